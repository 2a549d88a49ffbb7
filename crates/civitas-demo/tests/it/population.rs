//! The generated population: deterministic, valid, consistent across departments, and mixed so
//! that every scenario approves, denies and sends to review.

use std::collections::HashSet;
use std::time::Instant;

use civitas_core::{CitizenId, RegionCode};
use civitas_demo::Population;
use civitas_demo::citizens::{
    FundStatus, Gender, GenerationError, HouseholdRelation, IdentityStatus, InsuranceStatus,
    MaritalStatus, Outcome, Scenario,
};
use jiff::civil::Date;

use crate::support::{CITY_SIZE, TODAY, city};

#[test]
fn the_same_seed_gives_the_same_population_and_another_seed_another() {
    let first = Population::generate(7, 5_000, TODAY).unwrap();
    let again = Population::generate(7, 5_000, TODAY).unwrap();
    assert!(first == again, "the same seed gave different populations");

    let other = Population::generate(8, 5_000, TODAY).unwrap();
    assert!(first != other);
    let first_ids: HashSet<&str> = first.citizens().iter().map(|c| c.id_number()).collect();
    let shared = other
        .citizens()
        .iter()
        .filter(|citizen| first_ids.contains(citizen.id_number()))
        .count();
    assert!(shared < 50, "{shared} ID numbers in common");
}

#[test]
fn every_id_number_is_valid_and_agrees_with_the_record() {
    let city = city();
    assert_eq!(city.len(), CITY_SIZE);
    let nanjing_districts = [
        "320102", "320104", "320105", "320106", "320111", "320113", "320114", "320115", "320116",
        "320117", "320118",
    ];
    let mut unique = HashSet::new();
    let mut born_in_nanjing = 0;
    let mut born_in_other_provinces = 0;
    let mut compound_surnames = 0;
    let mut men = 0;
    for citizen in city.citizens() {
        let id = CitizenId::parse(citizen.id_number()).unwrap();
        assert_eq!(id.as_str(), citizen.id_number());
        assert!(unique.insert(citizen.id_number()), "a duplicate ID number");
        let birth = citizen.birth_date();
        assert_eq!(
            id.birth_date(),
            (
                birth.year() as u32,
                birth.month() as u32,
                birth.day() as u32
            )
        );
        assert!(
            (Date::constant(1930, 1, 1)..=TODAY).contains(&birth),
            "{birth}"
        );
        let sequence_digit = citizen.id_number().as_bytes()[16] - b'0';
        let expected_gender = if sequence_digit % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        };
        assert_eq!(citizen.gender(), expected_gender);
        men += usize::from(citizen.gender() == Gender::Male);
        if nanjing_districts.contains(&id.region()) {
            born_in_nanjing += 1;
        }
        if !id.region().starts_with("32") {
            born_in_other_provinces += 1;
        }
        let name = citizen.name();
        assert!((2..=4).contains(&name.chars().count()), "{name}");
        assert!(name.starts_with(citizen.surname()));
        if citizen.surname().chars().count() == 2 {
            compound_surnames += 1;
        }
    }
    assert_share(born_in_nanjing, 0.70..0.90, "born in nanjing");
    assert_share(
        born_in_other_provinces,
        0.05..0.20,
        "born in other provinces",
    );
    assert_share(men, 0.47..0.53, "men");
    assert!(
        compound_surnames > 50,
        "{compound_surnames} compound surnames"
    );
}

#[test]
fn citizens_are_found_by_id_number() {
    let city = city();
    for (index, citizen) in city.citizens().iter().enumerate() {
        assert_eq!(city.index_of(citizen.id_number()), Some(index));
    }
    let with_x = city
        .citizens()
        .iter()
        .find(|citizen| citizen.id_number().ends_with('X'))
        .expect("about one number in eleven ends in X");
    let lower_case = with_x.id_number().to_ascii_lowercase();
    assert_eq!(
        city.find(&lower_case).unwrap().id_number(),
        with_x.id_number()
    );
    assert!(city.find("110105194912310021").is_none());
    assert!(city.find("3201").is_none());
    assert!(city.find("").is_none());
}

#[test]
fn marriages_are_symmetric_and_spouses_share_a_household() {
    let city = city();
    let mut married = 0;
    let mut shared_households = 0;
    for (index, citizen) in city.citizens().iter().enumerate() {
        let marriage = citizen.marriage();
        match marriage.status() {
            MaritalStatus::Married => {
                married += 1;
                let spouse_index = marriage
                    .spouse_index()
                    .expect("a married citizen has a spouse");
                let spouse = city.citizen(spouse_index);
                assert_eq!(spouse.marriage().status(), MaritalStatus::Married);
                assert_eq!(spouse.marriage().spouse_index(), Some(index));
                assert_eq!(spouse.marriage().registered_on(), marriage.registered_on());
                assert_ne!(spouse.gender(), citizen.gender());
                assert_ne!(citizen.status(), IdentityStatus::Deceased);
                let wedding = marriage.registered_on().unwrap();
                assert!(wedding <= TODAY);
                let minimum_age = if citizen.gender() == Gender::Male {
                    22
                } else {
                    20
                };
                assert!(citizen.age_on(wedding) >= minimum_age, "married too young");
                if let (Some(mine), Some(theirs)) = (citizen.household(), spouse.household()) {
                    shared_households += 1;
                    assert_eq!(mine.household_id(), theirs.household_id());
                    assert_eq!(mine.address(), theirs.address());
                    let relations = [mine.relation(), theirs.relation()];
                    assert!(relations.contains(&HouseholdRelation::Head));
                    assert!(relations.contains(&HouseholdRelation::Spouse));
                }
            }
            MaritalStatus::Unmarried => {
                assert_eq!(marriage.spouse_index(), None);
                assert_eq!(marriage.registered_on(), None);
            }
            MaritalStatus::Divorced | MaritalStatus::Widowed => {
                assert_eq!(marriage.spouse_index(), None);
                assert!(marriage.registered_on().unwrap() <= TODAY);
            }
        }
    }
    assert_share(married, 0.35..0.65, "married");
    assert!(shared_households > 10_000, "{shared_households}");
}

#[test]
fn households_are_in_nanjing_and_only_for_the_living() {
    let city = city();
    let mut registered = 0;
    let mut household_ids = HashSet::new();
    for citizen in city.citizens() {
        let Some(household) = citizen.household() else {
            continue;
        };
        registered += 1;
        assert_eq!(citizen.status(), IdentityStatus::Normal);
        let region = RegionCode::parse(household.region()).unwrap();
        assert!(region.is_within(RegionCode::parse("320100").unwrap()));
        assert_ne!(household.region(), "320100");
        let address = household.address().to_string();
        let expected_start = format!("江苏省南京市{}", region.region().name);
        assert!(address.starts_with(&expected_start), "{address}");
        assert!(address.ends_with('室'), "{address}");
        let household_id = household.household_id();
        assert_eq!(household_id.len(), 14);
        assert!(household_id.starts_with(&format!("H{}", household.region())));
        household_ids.insert(household_id);
        assert!(household.registered_on() >= citizen.birth_date());
        assert!(household.registered_on() <= TODAY);
    }
    assert_share(registered, 0.70..0.90, "registered in the city");
    // Spouses share households, so there are fewer households than registered citizens.
    assert!(household_ids.len() < registered);
}

#[test]
fn insurance_and_fund_histories_are_plausible() {
    let city = city();
    let latest = city.latest_month();
    assert_eq!(latest.to_string(), "2026-10");
    let mut account_numbers = HashSet::new();
    let mut gaps = 0;
    let mut insured = 0;
    for citizen in city.citizens() {
        if let Some(insurance) = citizen.insurance() {
            insured += 1;
            assert!(insurance.employer().starts_with("南京"));
            if insurance.status() != InsuranceStatus::Active {
                assert!(
                    !insurance.paid(0),
                    "a suspended or closed insurance is paid"
                );
            }
        }
        let Some(account) = citizen.fund_account() else {
            continue;
        };
        assert!(citizen.age_on(TODAY) >= 18);
        let account_no = account.account_no();
        assert_eq!(account_no.len(), 16);
        assert!(account_no.starts_with("320100"));
        assert!(
            account_numbers.insert(account_no),
            "a duplicate account number"
        );
        assert!(account.monthly_deposit_fen() >= 100 * 100);
        if account.status() == FundStatus::Sealed {
            assert_eq!(
                account.deposit_fen(latest, 0),
                None,
                "a sealed account receives"
            );
        }
        let deposited: Vec<bool> = (0..24)
            .map(|months_ago| account.deposit_fen(latest, months_ago).is_some())
            .collect();
        // A gap: a month without a deposit between two with one.
        let first = deposited.iter().position(|&d| d);
        let last = deposited.iter().rposition(|&d| d);
        if let (Some(first), Some(last)) = (first, last)
            && deposited[first..=last].contains(&false)
        {
            gaps += 1;
        }
        for months_ago in 0..24 {
            if let Some(amount) = account.deposit_fen(latest, months_ago) {
                assert!(amount > 0 && amount <= account.monthly_deposit_fen());
            }
        }
        assert_eq!(account.deposit_fen(latest, 24), None);
    }
    assert_share(insured, 0.45..0.75, "insured");
    assert!(gaps > 1_000, "{gaps} histories with gaps");
}

#[test]
fn properties_belong_to_their_owners() {
    let city = city();
    let mut certificates = HashSet::new();
    let mut owners_of_two = 0;
    let mut elsewhere = 0;
    for (index, _) in city.citizens().iter().enumerate() {
        let properties = city.properties_of(index);
        assert!(properties.len() <= 2);
        owners_of_two += usize::from(properties.len() == 2);
        for property in properties {
            assert_eq!(property.owner_index(), index);
            let certificate_no = property.certificate_no();
            assert!(certificate_no.contains("不动产权第"), "{certificate_no}");
            assert!(
                certificates.insert(certificate_no),
                "a duplicate certificate"
            );
            RegionCode::parse(property.region()).unwrap();
            assert!((20.0..=300.0).contains(&property.area_m2()));
            assert!(property.registered_on() <= TODAY);
            if !property.address().is_in_nanjing() {
                elsewhere += 1;
                assert!(!property.region().starts_with("3201"));
            }
        }
    }
    assert!(owners_of_two > 1_000, "{owners_of_two}");
    assert!(elsewhere > 1_000, "{elsewhere}");
}

#[test]
fn birth_certificates_name_parents_in_the_population() {
    let city = city();
    let certificates = city.birth_certificates();
    assert_eq!(certificates.len(), CITY_SIZE / 40);
    let mut numbers = HashSet::new();
    let mut without_father = 0;
    for certificate in certificates {
        let certificate_no = certificate.certificate_no();
        assert!(numbers.insert(certificate_no.clone()));
        assert_eq!(
            city.birth_certificate(&certificate_no),
            Some(certificate),
            "{certificate_no}"
        );
        let mother = city.citizen(certificate.mother_index());
        assert_eq!(mother.gender(), Gender::Female);
        assert!((18..=45).contains(&mother.age_on(certificate.born_on())));
        let born_on = certificate.born_on();
        assert!(
            born_on <= TODAY && born_on >= Date::constant(2026, 5, 1),
            "{born_on}"
        );
        let child_name = certificate.child_name();
        match certificate.father_index() {
            Some(father) => {
                let father = city.citizen(father);
                assert_eq!(father.gender(), Gender::Male);
                assert!(
                    child_name.starts_with(father.surname())
                        || child_name.starts_with(mother.surname()),
                    "{child_name}"
                );
            }
            None => {
                without_father += 1;
                assert!(child_name.starts_with(mother.surname()), "{child_name}");
            }
        }
        assert!(certificate.hospital().ends_with('院'));
    }
    assert!(without_father > 50, "{without_father}");
    let unknown = (0..)
        .map(|serial| format!("Q3201{serial:08}"))
        .find(|number| !numbers.contains(number))
        .unwrap();
    assert!(city.birth_certificate(&unknown).is_none());
    assert!(city.birth_certificate("Q3201").is_none());
    assert!(city.birth_certificate("320100123456").is_none());
}

#[test]
fn every_scenario_has_hundreds_of_each_outcome() {
    let city = city();
    for scenario in Scenario::ALL {
        let counts = city.outcome_counts(scenario);
        println!("{}: {counts:?}", scenario.code());
        for outcome in Outcome::ALL {
            assert!(
                counts.of(outcome) >= 300,
                "{}: only {} to {}",
                scenario.code(),
                counts.of(outcome),
                outcome.as_str()
            );
        }
        let examples = city.examples(scenario, 25);
        for outcome in Outcome::ALL {
            let chosen = examples.of(outcome);
            assert_eq!(chosen.len(), 25, "{} {}", scenario.code(), outcome.as_str());
            for example in chosen {
                let certificate_no = example.certificate_no.as_deref();
                let judgement = city
                    .expected_outcome(scenario, &example.id_number, certificate_no)
                    .unwrap();
                assert_eq!(judgement.outcome, outcome);
                assert_eq!(judgement.failed_rule, example.failed_rule);
                assert_eq!(judgement.failed_rule.is_none(), outcome == Outcome::Approve);
                let applicant = city.find(&example.id_number).unwrap();
                assert_eq!(applicant.name(), example.name);
                assert_eq!(
                    certificate_no.is_some(),
                    scenario == Scenario::NewbornRegistration
                );
            }
        }
        // Examples take turns between rules, so even a short list shows several.
        let rules: HashSet<Option<&str>> = city
            .examples(scenario, 4)
            .deny
            .iter()
            .map(|example| example.failed_rule)
            .collect();
        assert!(rules.len() >= 2, "{}: {rules:?}", scenario.code());
    }
}

#[test]
fn newborn_registration_checks_the_applicant_and_the_certificate() {
    let city = city();
    let stranger = "110105194912310021";
    assert_eq!(
        city.expected_outcome(Scenario::ElderlyCareAllowance, stranger, None),
        None
    );
    let newborn = &city.examples(Scenario::NewbornRegistration, 1).approve[0];
    let certificate_no = newborn.certificate_no.as_deref();
    let judge = |id_number: &str, certificate_no: Option<&str>| {
        city.expected_outcome(Scenario::NewbornRegistration, id_number, certificate_no)
    };
    assert_eq!(
        judge(stranger, certificate_no).unwrap().failed_rule,
        Some("applicant-is-parent")
    );
    assert_eq!(
        judge(&newborn.id_number, Some("Q3201"))
            .unwrap()
            .failed_rule,
        Some("birth-certificate-found")
    );
    assert_eq!(judge(&newborn.id_number, None), None);
    let father = city
        .birth_certificate(certificate_no.unwrap())
        .unwrap()
        .father_index()
        .unwrap();
    let by_father = judge(city.citizen(father).id_number(), certificate_no).unwrap();
    assert_eq!(by_father.outcome, Outcome::Approve);
}

#[test]
fn scenario_rules_hold_for_the_examples() {
    let city = city();
    let latest = city.latest_month();
    for example in city
        .examples(Scenario::HousingFundRentalWithdrawal, 50)
        .approve
    {
        let index = city.index_of(&example.id_number).unwrap();
        let citizen = city.citizen(index);
        let account = citizen.fund_account().unwrap();
        assert_eq!(account.status(), FundStatus::Normal);
        assert!((0..3).all(|months_ago| account.deposit_fen(latest, months_ago).is_some()));
        assert!(
            city.properties_of(index)
                .iter()
                .all(|property| !property.region().starts_with("3201"))
        );
        assert!(!account.name_differs_from_identity());
    }
    for example in city.examples(Scenario::ElderlyCareAllowance, 50).approve {
        let citizen = city.find(&example.id_number).unwrap();
        assert!(citizen.age_on(TODAY) >= 80);
        assert!(citizen.household().is_some());
        assert!(!citizen.elderly_care().receiving_allowance);
        assert_eq!(citizen.register_birth_date(), citizen.birth_date());
    }
    for example in city
        .examples(Scenario::NewbornRegistration, 50)
        .needs_review
    {
        let certificate_no = example.certificate_no.unwrap();
        let certificate = city.birth_certificate(&certificate_no).unwrap();
        let mother = city.citizen(certificate.mother_index());
        let married_to_the_father = certificate.father_index().is_some()
            && mother.marriage().spouse_index() == certificate.father_index();
        assert!(!married_to_the_father);
    }
}

#[test]
fn only_old_peoples_birth_dates_were_corrected_and_by_weeks() {
    let city = city();
    let mut corrected = 0;
    for citizen in city.citizens() {
        if !citizen.birth_date_corrected() {
            continue;
        }
        corrected += 1;
        assert!(citizen.birth_date().year() < 1950);
        let days_apart = citizen
            .register_birth_date()
            .duration_since(citizen.birth_date())
            .as_hours()
            .abs()
            / 24;
        assert!((1..=45).contains(&days_apart), "{days_apart} days apart");
    }
    assert!(corrected > 500, "{corrected}");
}

#[test]
fn generating_the_demo_city_takes_moments_and_little_memory() {
    let started = Instant::now();
    let population = Population::generate(99, CITY_SIZE, TODAY).unwrap();
    let elapsed = started.elapsed();
    let megabytes = population.memory_bytes() as f64 / 1e6;
    println!("generated {CITY_SIZE} citizens in {elapsed:?}, holding {megabytes:.1} MB");
    // A sanity bound only: a debug build on a busy machine is far slower than a release build.
    assert!(elapsed.as_secs() < 60, "{elapsed:?}");
    assert!(megabytes < 40.0, "{megabytes} MB");
}

#[test]
fn small_populations_and_bad_arguments() {
    let empty = Population::generate(1, 0, TODAY).unwrap();
    assert!(empty.is_empty());
    assert!(
        empty
            .examples(Scenario::NewbornRegistration, 5)
            .approve
            .is_empty()
    );
    for count in [1, 2, 10, 100] {
        let population = Population::generate(1, count, TODAY).unwrap();
        assert_eq!(population.len(), count);
        for scenario in Scenario::ALL {
            population.outcome_counts(scenario);
        }
    }
    let too_many = Population::generate(1, 5_000_001, TODAY).unwrap_err();
    assert!(matches!(too_many, GenerationError::TooManyCitizens { .. }));
    assert!(
        too_many
            .to_string()
            .starts_with("a demo city holds at most")
    );
    let too_early = Population::generate(1, 10, Date::constant(1930, 6, 1)).unwrap_err();
    assert!(matches!(too_early, GenerationError::TodayOutOfRange { .. }));
}

fn assert_share(count: usize, expected: std::ops::Range<f64>, what: &str) {
    let share = count as f64 / CITY_SIZE as f64;
    assert!(expected.contains(&share), "{what}: {share:.3}");
}
