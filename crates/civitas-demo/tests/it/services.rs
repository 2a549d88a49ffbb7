//! The provider services over real HTTP: every path and answer of `docs/demo-services.md`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use civitas_demo::citizens::{Citizen, InsuranceStatus, MaritalStatus};
use civitas_demo::services::{Department, ProviderServices, ServiceOptions};
use civitas_demo::{start_provider_services, start_provider_services_with};
use serde_json::{Value, json};

use crate::support::city;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Answer {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

async fn get(services: &ProviderServices, department: Department, path: &str) -> Answer {
    let url = format!("{}{path}", services.base_url(department));
    let response = reqwest::get(&url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        text,
        json,
    }
}

fn assert_not_found(answer: &Answer) {
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert_eq!(answer.json, json!({"error": "not_found"}));
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
}

/// The first citizen the predicate holds for.
fn someone(predicate: impl Fn(&Citizen) -> bool) -> String {
    city()
        .citizens()
        .iter()
        .find(|citizen| predicate(citizen))
        .expect("the demo city has such a citizen")
        .id_number()
        .to_owned()
}

/// The digits after the decimal point of the JSON number that follows `"{field}":` in `text`.
fn decimals_of(text: &str, field: &str) -> usize {
    let start = text.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
    let number: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .split_once('.')
        .map_or(0, |(_, decimals)| decimals.len())
}

#[tokio::test]
async fn persons_and_households() {
    let city = city();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let id_number = someone(|citizen| citizen.household().is_some());
    let citizen = city.find(&id_number).unwrap();

    let person = get(
        &services,
        Department::PublicSecurity,
        &format!("/persons/{id_number}"),
    )
    .await;
    assert_eq!(person.status, 200);
    assert_eq!(person.content_type, "application/json; charset=utf-8");
    assert_eq!(
        person.json,
        json!({
            "id_number": id_number,
            "name": citizen.name(),
            "gender": citizen.gender().as_str(),
            "birth_date": citizen.register_birth_date().to_string(),
            "status": "normal",
            "nationality": "CHN",
        })
    );

    let household = citizen.household().unwrap();
    let answer = get(
        &services,
        Department::PublicSecurity,
        &format!("/households/{id_number}"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json,
        json!({
            "id_number": id_number,
            "household_id": household.household_id(),
            "region": household.region(),
            "address": household.address().to_string(),
            "relation": household.relation().as_str(),
            "registered_on": household.registered_on().to_string(),
        })
    );
    assert!(
        answer.json["address"]
            .as_str()
            .unwrap()
            .starts_with("江苏省南京市")
    );

    // A lower-case check character finds the same person.
    if let Some(with_x) = city
        .citizens()
        .iter()
        .find(|c| c.id_number().ends_with('X'))
    {
        let lower = with_x.id_number().to_ascii_lowercase();
        let answer = get(
            &services,
            Department::PublicSecurity,
            &format!("/persons/{lower}"),
        )
        .await;
        assert_eq!(answer.json["id_number"], with_x.id_number());
    }

    // The register answers with a corrected birth date where there is one, not the ID number's.
    let corrected = someone(|citizen| citizen.birth_date_corrected());
    let corrected_citizen = city.find(&corrected).unwrap();
    let answer = get(
        &services,
        Department::PublicSecurity,
        &format!("/persons/{corrected}"),
    )
    .await;
    assert_eq!(
        answer.json["birth_date"],
        corrected_citizen.register_birth_date().to_string()
    );
    assert_ne!(
        answer.json["birth_date"],
        corrected_citizen.birth_date().to_string()
    );

    let elsewhere = someone(|citizen| citizen.household().is_none());
    let status = get(
        &services,
        Department::PublicSecurity,
        &format!("/persons/{elsewhere}"),
    )
    .await;
    assert_eq!(status.status, 200);
    assert_not_found(
        &get(
            &services,
            Department::PublicSecurity,
            &format!("/households/{elsewhere}"),
        )
        .await,
    );
    for unknown in ["110105194912310021", "not-an-id", "3201021990"] {
        assert_not_found(
            &get(
                &services,
                Department::PublicSecurity,
                &format!("/persons/{unknown}"),
            )
            .await,
        );
        assert_not_found(
            &get(
                &services,
                Department::PublicSecurity,
                &format!("/households/{unknown}"),
            )
            .await,
        );
    }
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn insurance_shows_the_last_24_months_newest_first() {
    let city = city();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let id_number = someone(|citizen| {
        citizen.insurance().is_some_and(|insurance| {
            insurance.status() == InsuranceStatus::Suspended && insurance.paid(23)
        })
    });
    let insurance = city.find(&id_number).unwrap().insurance().unwrap();
    let answer = get(
        &services,
        Department::HumanResources,
        &format!("/insurance/{id_number}"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["id_number"], id_number);
    assert_eq!(answer.json["status"], "suspended");
    assert_eq!(answer.json["city"], "320100");
    assert_eq!(answer.json["employer"], insurance.employer());
    let months = answer.json["months"].as_array().unwrap();
    assert_eq!(months.len(), 24);
    let latest = city.latest_month();
    for (months_ago, month) in months.iter().enumerate() {
        let months_ago = months_ago as u32;
        assert_eq!(month["month"], latest.months_before(months_ago).to_string());
        assert_eq!(month["paid"], insurance.paid(months_ago));
    }
    assert_eq!(
        months[0]["paid"], false,
        "a suspended insurance is not paid"
    );

    let never_insured = someone(|citizen| citizen.insurance().is_none());
    assert_not_found(
        &get(
            &services,
            Department::HumanResources,
            &format!("/insurance/{never_insured}"),
        )
        .await,
    );
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn fund_accounts_list_deposits_with_gaps_and_two_decimals() {
    let city = city();
    let latest = city.latest_month();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let id_number = someone(|citizen| {
        citizen.fund_account().is_some_and(|account| {
            account.deposit_fen(latest, 0).is_some() && account.deposit_fen(latest, 1).is_none()
        })
    });
    let citizen = city.find(&id_number).unwrap();
    let account = citizen.fund_account().unwrap();
    let answer = get(
        &services,
        Department::HousingFund,
        &format!("/accounts/{id_number}"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let mut name = String::new();
    citizen.write_fund_account_name(&mut name);
    assert_eq!(answer.json["name"], name);
    assert_eq!(answer.json["account_no"], account.account_no());
    assert_eq!(answer.json["status"], account.status().as_str());
    assert_eq!(
        answer.json["balance"].as_f64().unwrap(),
        f64::from(account.balance_fen()) / 100.0
    );
    assert_eq!(decimals_of(&answer.text, "balance"), 2, "{}", answer.text);
    assert_eq!(decimals_of(&answer.text, "monthly_deposit"), 2);
    assert_eq!(decimals_of(&answer.text, "amount"), 2);
    let deposits = answer.json["deposits"].as_array().unwrap();
    let expected: Vec<Value> = (0..24)
        .filter_map(|months_ago| {
            account.deposit_fen(latest, months_ago).map(|amount| {
                json!({
                    "month": latest.months_before(months_ago).to_string(),
                    "amount": f64::from(amount) / 100.0,
                })
            })
        })
        .collect();
    assert_eq!(deposits, &expected);
    assert_eq!(deposits[0]["month"], latest.to_string());
    assert_ne!(deposits[1]["month"], latest.months_before(1).to_string());

    // An account opened under another name shows that name.
    let renamed = someone(|citizen| {
        citizen
            .fund_account()
            .is_some_and(|account| account.name_differs_from_identity())
    });
    let renamed_answer = get(
        &services,
        Department::HousingFund,
        &format!("/accounts/{renamed}"),
    )
    .await;
    assert_ne!(
        renamed_answer.json["name"],
        city.find(&renamed).unwrap().name()
    );

    let without = someone(|citizen| citizen.fund_account().is_none());
    assert_not_found(
        &get(
            &services,
            Department::HousingFund,
            &format!("/accounts/{without}"),
        )
        .await,
    );
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn properties_always_answer() {
    let city = city();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let (owner_index, _) = city
        .citizens()
        .iter()
        .enumerate()
        .find(|(index, _)| city.properties_of(*index).len() == 2)
        .unwrap();
    let owner = city.citizen(owner_index).id_number();
    let answer = get(
        &services,
        Department::NaturalResources,
        &format!("/properties?owner={owner}"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let expected: Vec<Value> = city
        .properties_of(owner_index)
        .iter()
        .map(|property| {
            json!({
                "certificate_no": property.certificate_no(),
                "region": property.region(),
                "address": property.address().to_string(),
                "area_m2": property.area_m2(),
                "registered_on": property.registered_on().to_string(),
            })
        })
        .collect();
    assert_eq!(answer.json, json!({"owner": owner, "properties": expected}));

    let tenant = someone(|citizen| {
        let index = city.index_of(citizen.id_number()).unwrap();
        city.properties_of(index).is_empty()
    });
    let answer = get(
        &services,
        Department::NaturalResources,
        &format!("/properties?owner={tenant}"),
    )
    .await;
    assert_eq!(answer.json, json!({"owner": tenant, "properties": []}));

    // An unknown owner owns nothing; the owner is echoed as a proper JSON string.
    let answer = get(
        &services,
        Department::NaturalResources,
        "/properties?owner=%22nobody%5C",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json,
        json!({"owner": "\"nobody\\", "properties": []})
    );

    let answer = get(&services, Department::NaturalResources, "/properties").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json, json!({"error": "missing_owner"}));
    assert_not_found(
        &get(
            &services,
            Department::NaturalResources,
            &format!("/properties/{owner}"),
        )
        .await,
    );
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn elderly_care_and_marriages() {
    let city = city();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let elder = someone(|citizen| {
        citizen.elderly_care().receiving_allowance
            && citizen.elderly_care().disability_level.is_some()
    });
    let care = *city.find(&elder).unwrap().elderly_care();
    let answer = get(
        &services,
        Department::CivilAffairs,
        &format!("/elderly/{elder}"),
    )
    .await;
    assert_eq!(
        answer.json,
        json!({
            "id_number": elder,
            "receiving_allowance": true,
            "living_alone": care.living_alone,
            "disability_level": care.disability_level,
        })
    );
    let child = someone(|citizen| citizen.age_on(city.today()) < 10);
    let answer = get(
        &services,
        Department::CivilAffairs,
        &format!("/elderly/{child}"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["disability_level"], Value::Null);
    assert_eq!(answer.json["receiving_allowance"], false);

    let husband = someone(|citizen| citizen.marriage().status() == MaritalStatus::Married);
    let answer = get(
        &services,
        Department::CivilAffairs,
        &format!("/marriages/{husband}"),
    )
    .await;
    assert_eq!(answer.json["status"], "married");
    let spouse = answer.json["spouse_id_number"].as_str().unwrap().to_owned();
    let back = get(
        &services,
        Department::CivilAffairs,
        &format!("/marriages/{spouse}"),
    )
    .await;
    assert_eq!(back.json["spouse_id_number"], husband.as_str());
    assert_eq!(back.json["registered_on"], answer.json["registered_on"]);

    let single = someone(|citizen| citizen.marriage().status() == MaritalStatus::Unmarried);
    let answer = get(
        &services,
        Department::CivilAffairs,
        &format!("/marriages/{single}"),
    )
    .await;
    assert_eq!(
        answer.json,
        json!({"id_number": single, "status": "unmarried", "spouse_id_number": null, "registered_on": null})
    );
    let divorced = someone(|citizen| citizen.marriage().status() == MaritalStatus::Divorced);
    let answer = get(
        &services,
        Department::CivilAffairs,
        &format!("/marriages/{divorced}"),
    )
    .await;
    assert_eq!(answer.json["status"], "divorced");
    assert_eq!(answer.json["spouse_id_number"], Value::Null);
    assert!(answer.json["registered_on"].is_string());

    for path in [
        "/elderly/110105194912310021",
        "/marriages/110105194912310021",
    ] {
        assert_not_found(&get(&services, Department::CivilAffairs, path).await);
    }
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn birth_certificates_name_parents_the_population_service_knows() {
    let city = city();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let certificate = city
        .birth_certificates()
        .iter()
        .find(|certificate| certificate.father_index().is_some())
        .unwrap();
    let certificate_no = certificate.certificate_no();
    let answer = get(
        &services,
        Department::Health,
        &format!("/births/{certificate_no}"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let mother = city.citizen(certificate.mother_index()).id_number();
    let father = city
        .citizen(certificate.father_index().unwrap())
        .id_number();
    assert_eq!(
        answer.json,
        json!({
            "certificate_no": certificate_no,
            "child_name": certificate.child_name(),
            "gender": certificate.child_gender().as_str(),
            "born_on": certificate.born_on().to_string(),
            "hospital": certificate.hospital(),
            "mother_id_number": mother,
            "father_id_number": father,
        })
    );
    for parent in [mother, father] {
        let person = get(
            &services,
            Department::PublicSecurity,
            &format!("/persons/{parent}"),
        )
        .await;
        assert_eq!(person.status, 200);
    }
    let without_father = city
        .birth_certificates()
        .iter()
        .find(|certificate| certificate.father_index().is_none())
        .unwrap()
        .certificate_no();
    let answer = get(
        &services,
        Department::Health,
        &format!("/births/{without_father}"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["father_id_number"], Value::Null);
    assert!(answer.json["mother_id_number"].is_string());

    for unknown in ["Q3201", "Q3201ABCDEFGH", "Q32010000000000", "nothing"] {
        assert_not_found(&get(&services, Department::Health, &format!("/births/{unknown}")).await);
    }
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn each_department_serves_only_its_paths_and_counts_requests() {
    let city = city();
    let services = start_provider_services(city.clone(), LOOPBACK)
        .await
        .unwrap();
    let ports: std::collections::HashSet<u16> = services
        .addresses()
        .map(|(_, address)| address.port())
        .collect();
    assert_eq!(ports.len(), Department::ALL.len());
    let id_number = city.citizen(0).id_number().to_owned();

    assert_not_found(
        &get(
            &services,
            Department::HousingFund,
            &format!("/persons/{id_number}"),
        )
        .await,
    );
    assert_not_found(&get(&services, Department::Health, "/").await);
    for _ in 0..3 {
        get(
            &services,
            Department::CivilAffairs,
            &format!("/elderly/{id_number}"),
        )
        .await;
    }
    assert_eq!(services.requests_served(Department::HousingFund), 1);
    assert_eq!(services.requests_served(Department::Health), 1);
    assert_eq!(services.requests_served(Department::CivilAffairs), 3);
    assert_eq!(services.requests_served(Department::PublicSecurity), 0);
    assert_eq!(services.total_requests_served(), 5);
    services.shutdown().await.unwrap();
}

#[tokio::test]
async fn latency_delays_answers_and_shutdown_stops_the_servers() {
    let city = city();
    let latency = Duration::from_millis(60);
    let options =
        ServiceOptions::default().with_department_latency(Department::HousingFund, latency);
    assert_eq!(options.latency(Department::Health), Duration::ZERO);
    let services = start_provider_services_with(city.clone(), LOOPBACK, &options)
        .await
        .unwrap();
    let id_number = city.citizen(0).id_number().to_owned();
    let started = Instant::now();
    get(
        &services,
        Department::HousingFund,
        &format!("/accounts/{id_number}"),
    )
    .await;
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());

    let address = services.address(Department::HousingFund);
    services.shutdown().await.unwrap();
    let refused = reqwest::get(format!("http://{address}/accounts/{id_number}")).await;
    assert!(refused.is_err(), "the service still answers after shutdown");
}

#[test]
fn departments_carry_the_documented_codes() {
    let systems: Vec<&str> = Department::ALL.iter().map(|d| d.system_code()).collect();
    assert_eq!(
        systems,
        [
            "population",
            "social-insurance",
            "fund-core",
            "real-estate",
            "civil-affairs",
            "birth-registry"
        ]
    );
    assert_eq!(Department::HousingFund.credit_code(), "11320100013201020G");
    let services: Vec<&str> = Department::ALL
        .iter()
        .flat_map(|d| d.services().iter().map(|(code, _)| *code))
        .collect();
    assert_eq!(
        services,
        [
            "persons",
            "households",
            "insurance",
            "accounts",
            "properties",
            "elderly",
            "marriages",
            "births"
        ]
    );
}
