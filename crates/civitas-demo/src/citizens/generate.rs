//! Drawing a population. Each part of the city (identities, households, marriages, work, real
//! estate, the elderly register, births) has its own random stream, so that changing how one is
//! drawn leaves the others as they were.
//!
//! The proportions below are rough pictures of Nanjing, bent where the demo needs it: births,
//! corrected birth dates of old people and fund accounts under another name are more frequent
//! than in life, so that every shipped scenario has hundreds of applications for each outcome.

use std::collections::HashSet;

use civitas_core::CitizenId;
use jiff::SignedDuration;
use jiff::civil::Date;

use super::vocabulary::{
    self, BIRTH_REGIONS_ELSEWHERE, COMMON_ROADS, DISTRICTS, EMPLOYER_COUNT, HOSPITALS, NameFashion,
    PLACES_ELSEWHERE, SURNAMES,
};
use super::{
    Address, BirthCertificate, Citizen, ElderlyCare, FundAccount, FundStatus, Gender,
    GenerationError, Household, HouseholdRelation, IdentityStatus, InsuranceStatus, Location,
    MAX_CITIZENS, MaritalStatus, Marriage, Month, Name, Population, Property, SocialInsurance,
};
use civitas_synth::random::{Random, WeightTable};

/// Separates the random streams of one seed.
#[derive(Clone, Copy)]
enum Stream {
    Identities = 1,
    Households = 2,
    Marriages = 3,
    Work = 4,
    Properties = 5,
    ElderlyCare = 6,
    Births = 7,
    Numbering = 8,
    Spouses = 9,
    Corrections = 10,
}

/// One birth certificate per this many citizens: about ten times Nanjing's birth rate, so that a
/// demo city has plenty of newborns to register.
const CITIZENS_PER_BIRTH_CERTIFICATE: usize = 40;

/// Babies on birth certificates were born at most this many days before today.
const NEWBORN_MAX_AGE_DAYS: i64 = 180;

/// Numbers derived from positions are `position × this mod 10^k`: the multiplier is coprime with
/// 10, so distinct positions below 10^k give distinct numbers that do not look sequential.
const NUMBER_SPREADING_MULTIPLIER: u64 = 2_654_435_761;

const ALL_HISTORY: u32 = (1 << super::HISTORY_MONTHS) - 1;

pub(super) fn generate(
    seed: u64,
    count: usize,
    today: Date,
) -> Result<Population, GenerationError> {
    if count > MAX_CITIZENS {
        return Err(GenerationError::TooManyCitizens { requested: count });
    }
    if !(Date::constant(1931, 1, 1)..=Date::constant(2099, 12, 31)).contains(&today) {
        return Err(GenerationError::TodayOutOfRange { today });
    }
    let mut generator = Generator {
        seed,
        today,
        latest_month: Month::of(today).months_before(1),
        drafts: Vec::with_capacity(count),
        citizens: Vec::with_capacity(count),
    };
    generator.draw_identities(count);
    generator.draw_birth_date_corrections();
    generator.draw_marriages();
    generator.draw_households();
    generator.share_households_between_spouses();
    generator.draw_work();
    generator.draw_elderly_care();
    let (properties, property_starts) = generator.draw_properties();
    let birth_certificates = generator.draw_birth_certificates();

    let Generator {
        citizens,
        latest_month,
        ..
    } = generator;
    let mut by_id_number: Vec<u32> = (0..citizens.len() as u32).collect();
    by_id_number.sort_unstable_by(|&left, &right| {
        citizens[left as usize]
            .id_number
            .cmp(&citizens[right as usize].id_number)
    });
    Ok(Population {
        seed,
        today,
        latest_month,
        citizens,
        by_id_number,
        properties,
        property_starts,
        birth_certificates,
    })
}

/// What generation needs to know about a citizen beyond the record itself.
struct Draft {
    /// The Nanjing district of the ID number, for citizens born in the city.
    birth_district: Option<u8>,
    /// Whether the citizen's household is registered in the city.
    registered_here: bool,
    age: u32,
}

struct Generator {
    seed: u64,
    today: Date,
    latest_month: Month,
    drafts: Vec<Draft>,
    citizens: Vec<Citizen>,
}

impl Generator {
    fn random(&self, stream: Stream) -> Random {
        Random::new(self.seed, stream as u64)
    }

    fn draw_identities(&mut self, count: usize) {
        let mut random = self.random(Stream::Identities);
        let oldest_age = (self.today.year() - EARLIEST_BIRTH_YEAR) as u32;
        let ages = WeightTable::new((0..=oldest_age).map(age_weight));
        let surnames = WeightTable::new(SURNAMES.iter().map(|&(_, weight)| weight));
        let districts = WeightTable::new(DISTRICTS.iter().map(|district| district.weight));
        let regions_elsewhere =
            WeightTable::new(BIRTH_REGIONS_ELSEWHERE.iter().map(|&(_, weight)| weight));
        let mut issued: HashSet<[u8; 18]> = HashSet::with_capacity(count);

        for _ in 0..count {
            let age = ages.draw(&mut random) as u32;
            // Born within the year of life that makes the citizen `age` today.
            let latest_birth = years_before(self.today, age);
            let earliest_birth =
                add_days(years_before(self.today, age + 1), 1).max(super::EARLIEST_BIRTH_DATE);
            let birth_date = random_date(&mut random, earliest_birth, latest_birth);
            let gender = if random.chance(500) {
                Gender::Male
            } else {
                Gender::Female
            };
            let birth_district = random
                .chance(800)
                .then(|| districts.draw(&mut random) as u8);
            let region = match birth_district {
                Some(district) => DISTRICTS[usize::from(district)].code,
                None => BIRTH_REGIONS_ELSEWHERE[regions_elsewhere.draw(&mut random)].0,
            };
            let id_number = loop {
                // The sequence number's last digit is odd for men and even for women.
                let parity = u32::from(gender == Gender::Male);
                let sequence = random.below(500) as u32 * 2 + parity;
                let id = CitizenId::from_parts(
                    region,
                    birth_date.year() as u32,
                    birth_date.month() as u32,
                    birth_date.day() as u32,
                    sequence,
                )
                .expect("the parts of a generated ID number are valid");
                let bytes: [u8; 18] = id
                    .as_str()
                    .as_bytes()
                    .try_into()
                    .expect("an ID number has 18 characters");
                if issued.insert(bytes) {
                    break bytes;
                }
            };
            let name = draw_name(&mut random, &surnames, gender, birth_date.year());
            let status = draw_identity_status(&mut random, age);
            let registered_here = status == IdentityStatus::Normal
                && random.chance(if birth_district.is_some() { 915 } else { 330 });
            self.drafts.push(Draft {
                birth_district,
                registered_here,
                age,
            });
            self.citizens.push(Citizen {
                id_number,
                name,
                birth_date,
                register_birth_date: birth_date,
                status,
                household: None,
                insurance: None,
                fund_account: None,
                elderly_care: ElderlyCare {
                    receiving_allowance: false,
                    living_alone: false,
                    disability_level: None,
                },
                marriage: Marriage {
                    status: MaritalStatus::Unmarried,
                    spouse: Marriage::NO_SPOUSE,
                    registered_on: None,
                },
            });
        }
    }

    /// Some old people's birth dates were corrected in the register after their ID number was
    /// issued: written down wrongly at first, or in the lunar calendar.
    fn draw_birth_date_corrections(&mut self) {
        let mut random = self.random(Stream::Corrections);
        for citizen in &mut self.citizens {
            if citizen.birth_date.year() >= 1950 || !random.chance(180) {
                continue;
            }
            let shift = random.between(1, 45) * if random.chance(500) { 1 } else { -1 };
            let corrected = add_days(citizen.birth_date, shift);
            citizen.register_birth_date = if corrected > self.today {
                add_days(citizen.birth_date, -shift)
            } else {
                corrected
            };
        }
    }

    /// Decides each adult's marital status by age, then pairs the men and women who are to be
    /// married by similar age, mostly among people of the same place (registered here or not).
    fn draw_marriages(&mut self) {
        let mut random = self.random(Stream::Marriages);
        // [registered here or not][women, men]: (sort key, position).
        let mut to_marry: [[Vec<(i64, u32)>; 2]; 2] = Default::default();
        for (index, (citizen, draft)) in self.citizens.iter_mut().zip(&self.drafts).enumerate() {
            let gender = citizen.gender();
            let mut status = draw_marital_status(&mut random, draft.age, gender);
            if citizen.status == IdentityStatus::Deceased && status == MaritalStatus::Married {
                // The register closed the marriage when the citizen died.
                status = MaritalStatus::Widowed;
            }
            match status {
                MaritalStatus::Married => {
                    let mut group = usize::from(draft.registered_here);
                    if random.chance(120) {
                        group = 1 - group;
                    }
                    // Husbands are about two and a half years older than their wives: shifting
                    // the men's keys lines them up with the women they marry.
                    let mut key = day_number(citizen.birth_date) + random.between(-1200, 1200);
                    if gender == Gender::Male {
                        key += 900;
                    }
                    to_marry[group][usize::from(gender == Gender::Male)].push((key, index as u32));
                }
                MaritalStatus::Unmarried => {}
                MaritalStatus::Divorced | MaritalStatus::Widowed => {
                    let earliest = years_after(citizen.birth_date, 23).min(self.today);
                    citizen.marriage.status = status;
                    citizen.marriage.registered_on =
                        Some(random_date(&mut random, earliest, self.today));
                }
            }
        }
        for [women, men] in &mut to_marry {
            women.sort_unstable();
            men.sort_unstable();
            for (&(_, wife), &(_, husband)) in women.iter().zip(men.iter()) {
                let wife_birth = self.citizens[wife as usize].birth_date;
                let husband_birth = self.citizens[husband as usize].birth_date;
                let earliest = years_after(wife_birth, 20)
                    .max(years_after(husband_birth, 22))
                    .max(Date::constant(1950, 1, 1))
                    .min(self.today);
                // Most couples marry within ten years of being allowed to.
                let latest = add_days(earliest, 3650).min(self.today);
                let wedding = random_date(&mut random, earliest, latest);
                for (spouse, partner) in [(wife, husband), (husband, wife)] {
                    self.citizens[spouse as usize].marriage = Marriage {
                        status: MaritalStatus::Married,
                        spouse: partner,
                        registered_on: Some(wedding),
                    };
                }
            }
            // Whoever found no partner stays single.
            let paired = women.len().min(men.len());
            for &(_, single) in women[paired..].iter().chain(&men[paired..]) {
                let citizen = &mut self.citizens[single as usize];
                if self.drafts[single as usize].age >= 30 {
                    let earliest = years_after(citizen.birth_date, 23).min(self.today);
                    citizen.marriage.status = MaritalStatus::Divorced;
                    citizen.marriage.registered_on =
                        Some(random_date(&mut random, earliest, self.today));
                }
            }
        }
    }

    fn draw_households(&mut self) {
        let mut random = self.random(Stream::Households);
        let mut numbering = self.random(Stream::Numbering);
        let serial_offset = numbering.below(10_000_000);
        let districts = WeightTable::new(DISTRICTS.iter().map(|district| district.weight));
        // The last day that lies a whole year before today: households registered after it
        // moved here within the year.
        let a_year_ago = add_days(years_before(self.today, 1), -1);
        for (index, (citizen, draft)) in self.citizens.iter_mut().zip(&self.drafts).enumerate() {
            if !draft.registered_here {
                continue;
            }
            let district = match draft.birth_district {
                Some(district) if random.chance(650) => district,
                _ => districts.draw(&mut random) as u8,
            };
            let address = random_nanjing_address(&mut random, district);
            let married = citizen.marriage.status == MaritalStatus::Married;
            let relation = if draft.age < 18 || (!married && draft.age < 28 && random.chance(700)) {
                HouseholdRelation::Child
            } else if !married && draft.age >= 75 && random.chance(300) {
                HouseholdRelation::Parent
            } else if random.chance(20) {
                HouseholdRelation::Other
            } else {
                HouseholdRelation::Head
            };
            let registered_on = if random.chance(50) {
                random_date(
                    &mut random,
                    add_days(a_year_ago, 2).max(citizen.birth_date),
                    self.today,
                )
            } else if citizen.birth_date >= a_year_ago
                || (draft.birth_district == Some(district) && random.chance(500))
            {
                citizen.birth_date
            } else {
                let earliest = years_after(citizen.birth_date, 18).min(a_year_ago);
                random_date(&mut random, earliest, a_year_ago)
            };
            citizen.household = Some(Household {
                serial: spread_number(index as u64, 10_000_000, serial_offset) as u32,
                address,
                relation,
                registered_on,
            });
        }
    }

    /// Married couples registered in the city live in one household: one spouse joins the other's.
    fn share_households_between_spouses(&mut self) {
        let mut random = self.random(Stream::Spouses);
        for index in 0..self.citizens.len() {
            let Some(spouse) = self.citizens[index].marriage.spouse_index() else {
                continue;
            };
            if spouse < index {
                continue;
            }
            let (Some(first), Some(second)) = (
                self.citizens[index].household,
                self.citizens[spouse].household,
            ) else {
                continue;
            };
            let wedding = self.citizens[index]
                .marriage
                .registered_on
                .expect("a marriage has a date");
            let wife_joins = random.chance(700);
            let first_is_wife = self.citizens[index].gender() == Gender::Female;
            let (head, head_household, joiner, joiner_household) = if wife_joins == first_is_wife {
                (spouse, second, index, first)
            } else {
                (index, first, spouse, second)
            };
            self.citizens[head].household = Some(Household {
                relation: HouseholdRelation::Head,
                ..head_household
            });
            self.citizens[joiner].household = Some(Household {
                relation: HouseholdRelation::Spouse,
                registered_on: joiner_household.registered_on.max(wedding).min(self.today),
                ..head_household
            });
        }
    }

    fn draw_work(&mut self) {
        let mut random = self.random(Stream::Work);
        let mut numbering = self.random(Stream::Numbering);
        let account_offset = numbering.below(10_000_000_000);
        let surnames = WeightTable::new(SURNAMES.iter().map(|&(_, weight)| weight));
        for (index, (citizen, draft)) in self.citizens.iter_mut().zip(&self.drafts).enumerate() {
            let age = draft.age;
            let working_age = (18..60).contains(&age);
            // Months the citizen has been working, as far as the 24-month history shows.
            let months_working = if age < 18 {
                0
            } else {
                ((age - 18) * 12 + random.below(12) as u32).min(super::HISTORY_MONTHS)
            };
            let history = recent_months(months_working);

            citizen.insurance = match citizen.status {
                IdentityStatus::Deceased | IdentityStatus::Cancelled
                    if age >= 25 && random.chance(450) =>
                {
                    let stopped = random.between(1, 30) as u32;
                    Some((
                        InsuranceStatus::Closed,
                        ALL_HISTORY & !recent_months(stopped),
                    ))
                }
                IdentityStatus::Normal if working_age => {
                    let insured = random.chance(if draft.registered_here { 880 } else { 760 });
                    insured.then(|| match random.weighted(&[820, 100, 80]) {
                        0 => {
                            let mut paid = history;
                            if random.chance(60) {
                                // The employer is late with the latest month.
                                paid &= !1;
                            }
                            if random.chance(70) {
                                paid = with_gap(&mut random, paid);
                            }
                            (InsuranceStatus::Active, paid)
                        }
                        1 => {
                            let stopped = random.between(1, 12) as u32;
                            (
                                InsuranceStatus::Suspended,
                                history & !recent_months(stopped),
                            )
                        }
                        _ => {
                            let stopped = random.between(3, 30) as u32;
                            (InsuranceStatus::Closed, history & !recent_months(stopped))
                        }
                    })
                }
                IdentityStatus::Normal if age >= 60 && random.chance(550) => {
                    // Contributions stop at retirement.
                    let retired = (age - 60) * 12 + 1 + random.below(12) as u32;
                    Some((
                        InsuranceStatus::Closed,
                        ALL_HISTORY & !recent_months(retired),
                    ))
                }
                _ => None,
            }
            .map(|(status, paid_months)| SocialInsurance {
                status,
                employer: random.below(EMPLOYER_COUNT as u64) as u16,
                paid_months,
            });

            let insurance_status = citizen.insurance.map(|insurance| insurance.status);
            let fund = match citizen.status {
                IdentityStatus::Deceased | IdentityStatus::Cancelled
                    if age >= 25 && random.chance(350) =>
                {
                    let stopped = random.between(1, 30) as u32;
                    Some((FundStatus::Sealed, ALL_HISTORY & !recent_months(stopped)))
                }
                IdentityStatus::Normal if working_age => {
                    let (has_account, status_weights) = match insurance_status {
                        Some(InsuranceStatus::Active) => (850, [900, 60, 40]),
                        Some(_) => (600, [300, 650, 50]),
                        None => (200, [500, 450, 50]),
                    };
                    random.chance(has_account).then(|| {
                        let status = [FundStatus::Normal, FundStatus::Sealed, FundStatus::Frozen]
                            [random.weighted(&status_weights)];
                        let deposited = match (status, citizen.insurance) {
                            (FundStatus::Sealed, _) => {
                                let stopped = random.between(1, 36) as u32;
                                history & !recent_months(stopped)
                            }
                            (_, Some(insurance)) if insurance.status == InsuranceStatus::Active => {
                                insurance.paid_months
                            }
                            _ => history,
                        };
                        let mut deposited = deposited;
                        if status != FundStatus::Sealed && random.chance(90) {
                            // A deposit of the last three months is missing or late.
                            deposited &= !(1 << random.below(3));
                        }
                        if random.chance(60) {
                            deposited = with_gap(&mut random, deposited);
                        }
                        (status, deposited)
                    })
                }
                IdentityStatus::Normal if age >= 60 && random.chance(250) => {
                    let retired = (age - 60) * 12 + 1 + random.below(12) as u32;
                    Some((FundStatus::Sealed, ALL_HISTORY & !recent_months(retired)))
                }
                _ => None,
            };
            citizen.fund_account = fund.map(|(status, deposited_months)| {
                // Employer and employee each pay 5 to 12 percent of the salary.
                let salary_yuan = 3500
                    + random.below(2500)
                    + if random.chance(450) {
                        random.below(9000)
                    } else {
                        0
                    }
                    + if random.chance(120) {
                        random.below(22_000)
                    } else {
                        0
                    };
                let salary_yuan = salary_yuan.min(36_000);
                let rate_per_mille = random.between(50, 120) as u64;
                let monthly_deposit_fen = (salary_yuan * rate_per_mille * 2 / 1000 * 100) as u32;
                let previous_deposit_fen =
                    (u64::from(monthly_deposit_fen) * random.between(900, 990) as u64 / 100_000
                        * 100) as u32;
                let months_saved = (age.saturating_sub(18) * 12 + 6).clamp(3, 240);
                let balance_fen = u64::from(monthly_deposit_fen)
                    * random.between(3, i64::from(months_saved)) as u64
                    * random.between(300, 1000) as u64
                    / 1000
                    + random.below(100);
                let recorded_name = random
                    .chance(50)
                    .then(|| other_given_name(&mut random, &surnames, citizen));
                FundAccount {
                    status,
                    account_serial: spread_number(index as u64, 10_000_000_000, account_offset),
                    balance_fen: balance_fen.min(u64::from(u32::MAX)) as u32,
                    monthly_deposit_fen,
                    previous_deposit_fen,
                    deposited_months,
                    recorded_name,
                }
            });
        }
    }

    fn draw_elderly_care(&mut self) {
        let mut random = self.random(Stream::ElderlyCare);
        for (citizen, draft) in self.citizens.iter_mut().zip(&self.drafts) {
            let alive = citizen.status != IdentityStatus::Deceased;
            let age = draft.age;
            citizen.elderly_care = ElderlyCare {
                receiving_allowance: age >= 80
                    && citizen.status == IdentityStatus::Normal
                    && citizen.household.is_some()
                    && random.chance(350),
                living_alone: alive
                    && age >= 60
                    && citizen.marriage.status != MaritalStatus::Married
                    && random.chance(450),
                disability_level: random
                    .chance(if age >= 60 { 90 } else { 12 })
                    .then(|| random.between(1, 4) as u8),
            };
        }
    }

    /// Real estate, citizen by citizen so that each citizen's properties are one run.
    fn draw_properties(&mut self) -> (Vec<Property>, Vec<u32>) {
        let mut random = self.random(Stream::Properties);
        let mut numbering = self.random(Stream::Numbering);
        let serial_offset = numbering.below(10_000_000);
        let districts = WeightTable::new(DISTRICTS.iter().map(|district| district.weight));
        let mut properties = Vec::with_capacity(self.citizens.len() * 6 / 10);
        let mut starts = Vec::with_capacity(self.citizens.len() + 1);
        for (index, (citizen, draft)) in self.citizens.iter().zip(&self.drafts).enumerate() {
            starts.push(properties.len() as u32);
            if citizen.status == IdentityStatus::Deceased || draft.age < 22 {
                continue;
            }
            let local = citizen.household.is_some();
            let owns_per_mille = match (local, draft.age < 30) {
                (true, true) => 300,
                (true, false) => 650,
                (false, true) => 150,
                (false, false) => 400,
            };
            let count = if !random.chance(owns_per_mille) {
                0
            } else if random.chance(180) {
                2
            } else {
                1
            };
            for number in 0..count {
                let in_nanjing = random.chance(if local { 920 } else { 450 });
                let address = match citizen.household {
                    Some(household) if in_nanjing && number == 0 && random.chance(650) => {
                        // The citizen lives in the flat they own.
                        household.address
                    }
                    _ if in_nanjing => {
                        let district = districts.draw(&mut random) as u8;
                        random_nanjing_address(&mut random, district)
                    }
                    _ => Address {
                        location: Location::Elsewhere {
                            place: random.index(PLACES_ELSEWHERE.len()) as u8,
                        },
                        road: random.index(COMMON_ROADS.len()) as u8,
                        number: random.between(1, 388) as u16,
                        building: random.between(1, 32) as u8,
                        room: random_room(&mut random),
                    },
                };
                let earliest = years_after(citizen.birth_date, 22)
                    .max(Date::constant(1998, 1, 1))
                    .min(self.today);
                properties.push(Property {
                    owner: index as u32,
                    certificate_serial: spread_number(
                        properties.len() as u64,
                        10_000_000,
                        serial_offset,
                    ) as u32,
                    address,
                    area_tenths_m2: (random.between(420, 1450)
                        + if random.chance(100) {
                            random.between(0, 1200)
                        } else {
                            0
                        }) as u16,
                    registered_on: random_date(&mut random, earliest, self.today),
                });
            }
        }
        starts.push(properties.len() as u32);
        (properties, starts)
    }

    /// Babies born in the last months: mostly to married couples, some to parents who are not
    /// married to each other or to mothers whose certificate names no father, whose registration
    /// a clerk reviews.
    fn draw_birth_certificates(&mut self) -> Vec<BirthCertificate> {
        let mut random = self.random(Stream::Births);
        let mut numbering = self.random(Stream::Numbering);
        let serial_offset = numbering.below(100_000_000);
        let surnames = WeightTable::new(SURNAMES.iter().map(|&(_, weight)| weight));

        // Pools of parents: couples where one spouse is registered in the city, couples where
        // neither is, and single women and men.
        let mut couples_here = Vec::new();
        let mut couples_elsewhere = Vec::new();
        let mut single_women = Vec::new();
        let mut single_men = Vec::new();
        for (index, (citizen, draft)) in self.citizens.iter().zip(&self.drafts).enumerate() {
            if citizen.status == IdentityStatus::Deceased {
                continue;
            }
            let single = matches!(
                citizen.marriage.status,
                MaritalStatus::Unmarried | MaritalStatus::Divorced
            );
            match citizen.gender() {
                Gender::Female if (21..=42).contains(&draft.age) => {
                    if let Some(husband) = citizen.marriage.spouse_index() {
                        let registered_here = citizen.household.is_some()
                            || self.citizens[husband].household.is_some();
                        let pool = if registered_here {
                            &mut couples_here
                        } else {
                            &mut couples_elsewhere
                        };
                        pool.push((index as u32, husband as u32));
                    } else if single && draft.age <= 40 {
                        single_women.push(index as u32);
                    }
                }
                Gender::Male if single && (22..=45).contains(&draft.age) => {
                    single_men.push(index as u32);
                }
                _ => {}
            }
        }
        let has_singles = !single_women.is_empty() && !single_men.is_empty();
        let pool_sizes = [
            couples_here.len(),
            couples_elsewhere.len(),
            usize::from(has_singles),
        ];

        let count = self.citizens.len() / CITIZENS_PER_BIRTH_CERTIFICATE;
        let mut certificates = Vec::with_capacity(count);
        if pool_sizes.iter().all(|&size| size == 0) {
            return certificates;
        }
        for position in 0..count {
            let mut pool = random.weighted(&[550, 200, 250]);
            while pool_sizes[pool] == 0 {
                pool = (pool + 1) % pool_sizes.len();
            }
            let (mother, father) = match pool {
                0 => couples_here[random.index(couples_here.len())],
                1 => couples_elsewhere[random.index(couples_elsewhere.len())],
                _ => {
                    let mother = single_women[random.index(single_women.len())];
                    let father = if random.chance(300) {
                        BirthCertificate::NO_FATHER
                    } else {
                        single_men[random.index(single_men.len())]
                    };
                    (mother, father)
                }
            };
            let child_gender = if random.chance(515) {
                Gender::Male
            } else {
                Gender::Female
            };
            let mut child_name = draw_name(&mut random, &surnames, child_gender, self.today.year());
            let family = if father != BirthCertificate::NO_FATHER && random.chance(920) {
                father
            } else {
                mother
            };
            child_name.surname = self.citizens[family as usize].name.surname;
            let born_on = random_date(
                &mut random,
                add_days(self.today, -NEWBORN_MAX_AGE_DAYS),
                self.today,
            );
            certificates.push(BirthCertificate {
                serial: spread_number(position as u64, 100_000_000, serial_offset) as u32,
                child_name,
                child_gender,
                born_on,
                hospital: random.index(HOSPITALS.len()) as u8,
                mother,
                father,
            });
        }
        certificates.sort_unstable_by_key(|certificate| certificate.serial);
        certificates
    }
}

const EARLIEST_BIRTH_YEAR: i16 = 1930;

/// Relative number of people of each age: few old people, a bulge of people born in the 1960s to
/// 1980s, few children since the birth rate fell.
fn age_weight(age: u32) -> u32 {
    match age {
        0..=4 => 70,
        5..=24 => 100,
        25..=34 => 150,
        35..=44 => 140,
        45..=64 => 150,
        65..=74 => 110,
        75..=79 => 75,
        80..=84 => 60,
        85..=89 => 38,
        _ => 14,
    }
}

fn draw_identity_status(random: &mut Random, age: u32) -> IdentityStatus {
    let deceased_per_mille = match age {
        85.. => 120,
        80..=84 => 70,
        70..=79 => 30,
        50..=69 => 8,
        _ => 2,
    };
    if random.chance(deceased_per_mille) {
        IdentityStatus::Deceased
    } else if random.chance(4) {
        IdentityStatus::Cancelled
    } else {
        IdentityStatus::Normal
    }
}

fn draw_marital_status(random: &mut Random, age: u32, gender: Gender) -> MaritalStatus {
    // The legal minimum age of marriage.
    let minimum = if gender == Gender::Male { 22 } else { 20 };
    if age < minimum {
        return MaritalStatus::Unmarried;
    }
    // Unmarried, married, divorced, widowed.
    let weights = match age {
        ..25 => [85, 15, 0, 0],
        25..30 => [50, 47, 3, 0],
        30..35 => [24, 70, 6, 0],
        35..60 => [8, 82, 9, 1],
        60..75 => [3, 78, 6, 13],
        _ => [2, 50, 3, 45],
    };
    [
        MaritalStatus::Unmarried,
        MaritalStatus::Married,
        MaritalStatus::Divorced,
        MaritalStatus::Widowed,
    ][random.weighted(&weights)]
}

fn draw_name(random: &mut Random, surnames: &WeightTable, gender: Gender, birth_year: i16) -> Name {
    let fashion = match (birth_year < 1980, gender) {
        (true, Gender::Male) => NameFashion::OlderMen,
        (true, Gender::Female) => NameFashion::OlderWomen,
        (false, Gender::Male) => NameFashion::YoungerMen,
        (false, Gender::Female) => NameFashion::YoungerWomen,
    };
    let characters = vocabulary::given_name_characters_of(fashion);
    let draw_character =
        |random: &mut Random| characters.start + random.index(characters.len()) as u16;
    let first = draw_character(random);
    let two_characters = random.chance(if birth_year < 1980 { 750 } else { 650 });
    let second = if !two_characters {
        Name::NO_CHARACTER
    } else if random.chance(60) {
        // Doubled characters, as in 婷婷 or 欣欣.
        first
    } else {
        draw_character(random)
    };
    Name {
        surname: surnames.draw(random) as u8,
        given: [first, second],
    }
}

/// A name with the citizen's surname and another given name, as a fund account opened under a
/// former name would show.
fn other_given_name(random: &mut Random, surnames: &WeightTable, citizen: &Citizen) -> Name {
    loop {
        let mut name = draw_name(
            random,
            surnames,
            citizen.gender(),
            citizen.birth_date.year(),
        );
        name.surname = citizen.name.surname;
        if name != citizen.name {
            return name;
        }
    }
}

fn random_nanjing_address(random: &mut Random, district: u8) -> Address {
    Address {
        location: Location::Nanjing { district },
        road: random.index(DISTRICTS[usize::from(district)].roads.len()) as u8,
        number: random.between(1, 388) as u16,
        building: random.between(1, 32) as u8,
        room: random_room(random),
    }
}

/// A flat number such as 1502: the floor, then the door.
fn random_room(random: &mut Random) -> u16 {
    (random.between(1, 26) * 100 + random.between(1, 4)) as u16
}

/// The bits of the `count` months ending with the latest month.
fn recent_months(count: u32) -> u32 {
    if count >= super::HISTORY_MONTHS {
        ALL_HISTORY
    } else {
        (1 << count) - 1
    }
}

/// Clears one to three consecutive months somewhere before the last three, such as a change of
/// job leaves.
fn with_gap(random: &mut Random, months: u32) -> u32 {
    let length = random.between(1, 3) as u32;
    let start = random.between(3, i64::from(super::HISTORY_MONTHS - length)) as u32;
    months & !(recent_months(length) << start)
}

/// Spreads `position` over `0..modulus` without collisions (see [`NUMBER_SPREADING_MULTIPLIER`]).
fn spread_number(position: u64, modulus: u64, offset: u64) -> u64 {
    debug_assert!(position < modulus);
    (position * NUMBER_SPREADING_MULTIPLIER % modulus + offset) % modulus
}

const EPOCH: Date = Date::constant(1970, 1, 1);
const SECONDS_PER_DAY: i64 = 86_400;

fn day_number(date: Date) -> i64 {
    date.duration_since(EPOCH)
        .as_secs()
        .div_euclid(SECONDS_PER_DAY)
}

fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(SignedDuration::from_secs(days * SECONDS_PER_DAY))
        .expect("generated dates stay within jiff's range")
}

/// A uniformly drawn date in `earliest..=latest`.
fn random_date(random: &mut Random, earliest: Date, latest: Date) -> Date {
    debug_assert!(earliest <= latest, "{earliest} > {latest}");
    let earliest_day = day_number(earliest);
    add_days(
        EPOCH,
        random.between(earliest_day, day_number(latest).max(earliest_day)),
    )
}

/// The same day `years` later; 29 February becomes 28 February in a common year.
fn years_after(date: Date, years: i16) -> Date {
    shift_years(date, years)
}

fn years_before(date: Date, years: u32) -> Date {
    shift_years(date, -(years as i16))
}

fn shift_years(date: Date, years: i16) -> Date {
    let year = date.year() + years;
    let days_in_month = Date::new(year, date.month(), 1)
        .expect("the first of a month exists")
        .days_in_month();
    Date::new(year, date.month(), date.day().min(days_in_month))
        .expect("the day was clamped to the month")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_numbers_do_not_collide() {
        let mut seen: Vec<u64> = (0..100_000)
            .map(|position| spread_number(position, 100_000, 12_345))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn gaps_stay_before_the_last_three_months_and_inside_the_history() {
        let mut random = Random::new(5, 0);
        for _ in 0..1000 {
            let months = with_gap(&mut random, ALL_HISTORY);
            assert_eq!(months & 0b111, 0b111);
            assert_eq!(months & !ALL_HISTORY, 0);
            assert!(months.count_ones() >= super::super::HISTORY_MONTHS - 3);
        }
    }

    #[test]
    fn shifted_years_clamp_leap_days() {
        assert_eq!(
            years_after(Date::constant(2000, 2, 29), 1),
            Date::constant(2001, 2, 28)
        );
        assert_eq!(
            years_before(Date::constant(2026, 3, 1), 80),
            Date::constant(1946, 3, 1)
        );
        let day = day_number(Date::constant(2024, 2, 29));
        assert_eq!(add_days(EPOCH, day), Date::constant(2024, 2, 29));
        assert_eq!(day_number(Date::constant(1969, 12, 31)), -1);
    }
}
