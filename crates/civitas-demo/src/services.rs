//! The provider departments' HTTP services, serving a [`Population`] with the paths and answers of
//! `docs/demo-services.md`: one axum server per department, each on its own loopback port.
//!
//! They sit behind the exchange gateway in benchmarks, so an answer is one lookup (a binary
//! search) and one JSON string written straight from the compact records. An optional latency per
//! department stands in for a real upstream's.
//!
//! Beyond the document's examples: a birth certificate that names no father answers
//! `"father_id_number": null`, which the shipped newborn registration scenario sends to review.

use std::fmt::Write;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::citizens::{Citizen, HISTORY_MONTHS, Population};

/// The providing departments of the demo city, with the fixed credit codes the shipped scenario
/// definitions name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Department {
    /// 南京市公安局: `persons` and `households`.
    PublicSecurity,
    /// 南京市人力资源和社会保障局: `insurance`.
    HumanResources,
    /// 南京住房公积金管理中心: `accounts`.
    HousingFund,
    /// 南京市规划和自然资源局: `properties`.
    NaturalResources,
    /// 南京市民政局: `elderly` and `marriages`.
    CivilAffairs,
    /// 南京市卫生健康委员会: `births`.
    Health,
}

/// The credit code of 南京市数据局, the platform operator, whose `city-app` system is the
/// scenarios' front end.
pub const MUNICIPAL_DATA_BUREAU_CREDIT_CODE: &str = "11320100013201063X";

impl Department {
    pub const ALL: [Department; 6] = [
        Department::PublicSecurity,
        Department::HumanResources,
        Department::HousingFund,
        Department::NaturalResources,
        Department::CivilAffairs,
        Department::Health,
    ];

    /// The code of the department's providing system.
    pub fn system_code(self) -> &'static str {
        match self {
            Department::PublicSecurity => "population",
            Department::HumanResources => "social-insurance",
            Department::HousingFund => "fund-core",
            Department::NaturalResources => "real-estate",
            Department::CivilAffairs => "civil-affairs",
            Department::Health => "birth-registry",
        }
    }

    /// The body's unified social credit code.
    pub fn credit_code(self) -> &'static str {
        match self {
            Department::PublicSecurity => "11320100013201004T",
            Department::HumanResources => "11320100013201012M",
            Department::HousingFund => "11320100013201020G",
            Department::NaturalResources => "11320100013201039D",
            Department::CivilAffairs => "113201000132010478",
            Department::Health => "113201000132010553",
        }
    }

    pub fn body_name(self) -> &'static str {
        match self {
            Department::PublicSecurity => "南京市公安局",
            Department::HumanResources => "南京市人力资源和社会保障局",
            Department::HousingFund => "南京住房公积金管理中心",
            Department::NaturalResources => "南京市规划和自然资源局",
            Department::CivilAffairs => "南京市民政局",
            Department::Health => "南京市卫生健康委员会",
        }
    }

    /// The department's services as (service code, path pattern).
    pub fn services(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Department::PublicSecurity => &[
                ("persons", "/persons/{id_number}"),
                ("households", "/households/{id_number}"),
            ],
            Department::HumanResources => &[("insurance", "/insurance/{id_number}")],
            Department::HousingFund => &[("accounts", "/accounts/{id_number}")],
            Department::NaturalResources => &[("properties", "/properties?owner={id_number}")],
            Department::CivilAffairs => &[
                ("elderly", "/elderly/{id_number}"),
                ("marriages", "/marriages/{id_number}"),
            ],
            Department::Health => &[("births", "/births/{certificate_no}")],
        }
    }

    fn position(self) -> usize {
        Department::ALL
            .iter()
            .position(|&department| department == self)
            .expect("every department is in ALL")
    }
}

/// How the services behave beyond their data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceOptions {
    latency: [Duration; 6],
}

impl ServiceOptions {
    /// Every department answers after `latency`, like an upstream across a network.
    pub fn with_latency(mut self, latency: Duration) -> ServiceOptions {
        self.latency = [latency; 6];
        self
    }

    pub fn with_department_latency(
        mut self,
        department: Department,
        latency: Duration,
    ) -> ServiceOptions {
        self.latency[department.position()] = latency;
        self
    }

    pub fn latency(&self, department: Department) -> Duration {
        self.latency[department.position()]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {address} for the {system} service")]
    Bind {
        system: &'static str,
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the {system} service failed")]
    Serve {
        system: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the {system} service's task ended abnormally")]
    Task {
        system: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// What one department's handlers share.
struct ServiceState {
    population: Arc<Population>,
    latency: Duration,
    requests_served: AtomicU64,
}

struct RunningService {
    department: Department,
    address: SocketAddr,
    state: Arc<ServiceState>,
    task: JoinHandle<io::Result<()>>,
}

/// The running provider services. Dropping this value stops them too, without waiting.
pub struct ProviderServices {
    services: Vec<RunningService>,
    stop: watch::Sender<bool>,
}

impl ProviderServices {
    pub fn address(&self, department: Department) -> SocketAddr {
        self.service(department).address
    }

    /// `http://{address}`, the base the paths of `docs/demo-services.md` are appended to.
    pub fn base_url(&self, department: Department) -> String {
        format!("http://{}", self.address(department))
    }

    pub fn addresses(&self) -> impl Iterator<Item = (Department, SocketAddr)> + '_ {
        self.services
            .iter()
            .map(|service| (service.department, service.address))
    }

    /// Requests the department has received, answered or not yet, including unknown paths.
    pub fn requests_served(&self, department: Department) -> u64 {
        self.service(department)
            .state
            .requests_served
            .load(Ordering::Relaxed)
    }

    pub fn total_requests_served(&self) -> u64 {
        Department::ALL
            .iter()
            .map(|&department| self.requests_served(department))
            .sum()
    }

    /// Stops accepting connections, lets requests in flight finish and waits for every server.
    pub async fn shutdown(mut self) -> Result<(), ServiceError> {
        self.stop.send_replace(true);
        let mut first_error = None;
        for service in self.services.drain(..) {
            let system = service.department.system_code();
            let result = match service.task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(ServiceError::Serve { system, source }),
                Err(source) => Err(ServiceError::Task { system, source }),
            };
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn service(&self, department: Department) -> &RunningService {
        &self.services[department.position()]
    }
}

impl Drop for ProviderServices {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Starts every department's service on its own port of `bind` (port chosen by the system),
/// answering without added latency.
pub async fn start_provider_services(
    population: Arc<Population>,
    bind: IpAddr,
) -> Result<ProviderServices, ServiceError> {
    start_provider_services_with(population, bind, &ServiceOptions::default()).await
}

pub async fn start_provider_services_with(
    population: Arc<Population>,
    bind: IpAddr,
    options: &ServiceOptions,
) -> Result<ProviderServices, ServiceError> {
    let (stop, _) = watch::channel(false);
    let mut services = Vec::with_capacity(Department::ALL.len());
    for department in Department::ALL {
        let system = department.system_code();
        let address = SocketAddr::new(bind, 0);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServiceError::Bind {
                system,
                address,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| ServiceError::Bind {
            system,
            address,
            source,
        })?;
        let state = Arc::new(ServiceState {
            population: Arc::clone(&population),
            latency: options.latency(department),
            requests_served: AtomicU64::new(0),
        });
        let router = department_router_with_state(department, Arc::clone(&state));
        // Answers are small: without Nagle's delay each one leaves as soon as it is written.
        let listener = listener.tap_io(|connection| {
            let _ = connection.set_nodelay(true);
        });
        let mut stopped = stop.subscribe();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // An error means the sender is gone: stop as well.
                    let _ = stopped.wait_for(|&stop| stop).await;
                })
                .await
        });
        services.push(RunningService {
            department,
            address,
            state,
            task,
        });
    }
    Ok(ProviderServices { services, stop })
}

/// The router of one department's services, without latency, for serving inside another server.
pub fn department_router(department: Department, population: Arc<Population>) -> Router {
    department_router_with_state(
        department,
        Arc::new(ServiceState {
            population,
            latency: Duration::ZERO,
            requests_served: AtomicU64::new(0),
        }),
    )
}

fn department_router_with_state(department: Department, state: Arc<ServiceState>) -> Router {
    let router = match department {
        Department::PublicSecurity => Router::new()
            .route("/persons/{id_number}", get(person))
            .route("/households/{id_number}", get(household)),
        Department::HumanResources => Router::new().route("/insurance/{id_number}", get(insurance)),
        Department::HousingFund => Router::new().route("/accounts/{id_number}", get(fund_account)),
        Department::NaturalResources => Router::new().route("/properties", get(properties)),
        Department::CivilAffairs => Router::new()
            .route("/elderly/{id_number}", get(elderly_care))
            .route("/marriages/{id_number}", get(marriage)),
        Department::Health => Router::new().route("/births/{certificate_no}", get(birth)),
    };
    router
        .fallback(not_found_route)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_and_delay,
        ))
        .with_state(state)
}

async fn count_and_delay(
    State(state): State<Arc<ServiceState>>,
    request: Request,
    next: Next,
) -> Response {
    state.requests_served.fetch_add(1, Ordering::Relaxed);
    if !state.latency.is_zero() {
        pause(state.latency).await;
    }
    next.run(request).await
}

/// Waits `latency` to within the operating system's timer slack (tens of microseconds). Tokio's
/// timer counts whole milliseconds and rounds a deadline up to the next tick, so a 2 ms sleep on
/// it lasts 2 to 3 ms; a blocking-pool thread sleeps the exact time instead.
async fn pause(latency: Duration) {
    if tokio::task::spawn_blocking(move || std::thread::sleep(latency))
        .await
        .is_err()
    {
        tokio::time::sleep(latency).await;
    }
}

const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.to_owned())
}

async fn not_found_route() -> Response {
    not_found()
}

/// Looks the citizen up and answers with `write` or 404.
fn answer_for(
    state: &ServiceState,
    id_number: &str,
    write: impl FnOnce(&Population, usize, &Citizen, &mut String) -> bool,
) -> Response {
    let population = &state.population;
    let Some(index) = population.index_of(id_number) else {
        return not_found();
    };
    let mut body = String::with_capacity(512);
    if write(population, index, population.citizen(index), &mut body) {
        json(StatusCode::OK, body)
    } else {
        not_found()
    }
}

async fn person(State(state): State<Arc<ServiceState>>, Path(id_number): Path<String>) -> Response {
    answer_for(&state, &id_number, |_, _, citizen, out| {
        out.push_str(r#"{"id_number":"#);
        push_string(out, citizen.id_number());
        out.push_str(r#","name":""#);
        citizen.write_name(out);
        let _ = write!(
            out,
            r#"","gender":"{}","birth_date":"{}","status":"{}","nationality":"CHN"}}"#,
            citizen.gender().as_str(),
            citizen.register_birth_date(),
            citizen.status().as_str()
        );
        true
    })
}

async fn household(
    State(state): State<Arc<ServiceState>>,
    Path(id_number): Path<String>,
) -> Response {
    answer_for(&state, &id_number, |_, _, citizen, out| {
        let Some(household) = citizen.household() else {
            return false;
        };
        out.push_str(r#"{"id_number":"#);
        push_string(out, citizen.id_number());
        let _ = write!(
            out,
            r#","household_id":"{}","region":"{}","address":"{}","relation":"{}","registered_on":"{}"}}"#,
            household.household_id(),
            household.region(),
            household.address(),
            household.relation().as_str(),
            household.registered_on()
        );
        true
    })
}

async fn insurance(
    State(state): State<Arc<ServiceState>>,
    Path(id_number): Path<String>,
) -> Response {
    let latest = state.population.latest_month();
    answer_for(&state, &id_number, |_, _, citizen, out| {
        let Some(insurance) = citizen.insurance() else {
            return false;
        };
        out.push_str(r#"{"id_number":"#);
        push_string(out, citizen.id_number());
        let _ = write!(
            out,
            r#","status":"{}","city":"320100","employer":"#,
            insurance.status().as_str()
        );
        push_string(out, &insurance.employer());
        out.push_str(r#","months":["#);
        for months_ago in 0..HISTORY_MONTHS {
            if months_ago > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                r#"{{"month":"{}","paid":{}}}"#,
                latest.months_before(months_ago),
                insurance.paid(months_ago)
            );
        }
        out.push_str("]}");
        true
    })
}

async fn fund_account(
    State(state): State<Arc<ServiceState>>,
    Path(id_number): Path<String>,
) -> Response {
    let latest = state.population.latest_month();
    answer_for(&state, &id_number, |_, _, citizen, out| {
        let Some(account) = citizen.fund_account() else {
            return false;
        };
        out.push_str(r#"{"id_number":"#);
        push_string(out, citizen.id_number());
        out.push_str(r#","name":""#);
        citizen.write_fund_account_name(out);
        let _ = write!(
            out,
            r#"","account_no":"{}","status":"{}","balance":"#,
            account.account_no(),
            account.status().as_str()
        );
        push_money(out, account.balance_fen());
        out.push_str(r#","monthly_deposit":"#);
        push_money(out, account.monthly_deposit_fen());
        out.push_str(r#","deposits":["#);
        let mut first = true;
        for months_ago in 0..HISTORY_MONTHS {
            let Some(amount) = account.deposit_fen(latest, months_ago) else {
                continue;
            };
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(
                out,
                r#"{{"month":"{}","amount":"#,
                latest.months_before(months_ago)
            );
            push_money(out, amount);
            out.push('}');
        }
        out.push_str("]}");
        true
    })
}

#[derive(serde::Deserialize)]
struct OwnerQuery {
    owner: Option<String>,
}

async fn properties(
    State(state): State<Arc<ServiceState>>,
    Query(query): Query<OwnerQuery>,
) -> Response {
    let Some(owner) = query.owner else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"missing_owner"}"#.to_owned(),
        );
    };
    let population = &state.population;
    let mut out = String::with_capacity(512);
    out.push_str(r#"{"owner":"#);
    // An unknown owner owns nothing: the register answers the same for everyone.
    let properties = match population.index_of(&owner) {
        Some(index) => {
            push_string(&mut out, population.citizen(index).id_number());
            population.properties_of(index)
        }
        None => {
            push_string(&mut out, &owner);
            &[]
        }
    };
    out.push_str(r#","properties":["#);
    for (position, property) in properties.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        out.push_str(r#"{"certificate_no":"#);
        push_string(&mut out, &property.certificate_no());
        let area = property.area_tenths_m2();
        let _ = write!(
            out,
            r#","region":"{}","address":"{}","area_m2":{}.{},"registered_on":"{}"}}"#,
            property.region(),
            property.address(),
            area / 10,
            area % 10,
            property.registered_on()
        );
    }
    out.push_str("]}");
    json(StatusCode::OK, out)
}

async fn elderly_care(
    State(state): State<Arc<ServiceState>>,
    Path(id_number): Path<String>,
) -> Response {
    answer_for(&state, &id_number, |_, _, citizen, out| {
        let care = citizen.elderly_care();
        out.push_str(r#"{"id_number":"#);
        push_string(out, citizen.id_number());
        let _ = write!(
            out,
            r#","receiving_allowance":{},"living_alone":{},"disability_level":"#,
            care.receiving_allowance, care.living_alone
        );
        match care.disability_level {
            Some(level) => {
                let _ = write!(out, "{level}");
            }
            None => out.push_str("null"),
        }
        out.push('}');
        true
    })
}

async fn marriage(
    State(state): State<Arc<ServiceState>>,
    Path(id_number): Path<String>,
) -> Response {
    answer_for(&state, &id_number, |population, _, citizen, out| {
        let marriage = citizen.marriage();
        out.push_str(r#"{"id_number":"#);
        push_string(out, citizen.id_number());
        let _ = write!(
            out,
            r#","status":"{}","spouse_id_number":"#,
            marriage.status().as_str()
        );
        match population.spouse_of(citizen) {
            Some(spouse) => push_string(out, spouse.id_number()),
            None => out.push_str("null"),
        }
        out.push_str(r#","registered_on":"#);
        match marriage.registered_on() {
            Some(date) => {
                let _ = write!(out, r#""{date}""#);
            }
            None => out.push_str("null"),
        }
        out.push('}');
        true
    })
}

async fn birth(
    State(state): State<Arc<ServiceState>>,
    Path(certificate_no): Path<String>,
) -> Response {
    let population = &state.population;
    let Some(certificate) = population.birth_certificate(&certificate_no) else {
        return not_found();
    };
    let mut out = String::with_capacity(320);
    let _ = write!(
        out,
        r#"{{"certificate_no":"{}","child_name":"{}","gender":"{}","born_on":"{}","hospital":"{}","mother_id_number":"{}","father_id_number":"#,
        certificate.certificate_no(),
        certificate.child_name(),
        certificate.child_gender().as_str(),
        certificate.born_on(),
        certificate.hospital(),
        population.citizen(certificate.mother_index()).id_number(),
    );
    match certificate.father_index() {
        Some(father) => push_string(&mut out, population.citizen(father).id_number()),
        None => out.push_str("null"),
    }
    out.push('}');
    json(StatusCode::OK, out)
}

/// Money in fen as a JSON number of yuan with two decimals.
fn push_money(out: &mut String, fen: u32) {
    let _ = write!(out, "{}.{:02}", fen / 100, fen % 100);
}

/// A JSON string literal. Generated text needs no escaping, but an owner echoed from a query may.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if control < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_money_has_two_decimals() {
        let mut out = String::new();
        push_string(&mut out, "a\"b\\c\n\u{1}王");
        assert_eq!(out, r#""a\"b\\c\n\u0001王""#);
        let mut money = String::new();
        push_money(&mut money, 3_651_240);
        push_money(&mut money, 5);
        assert_eq!(money, "36512.400.05");
    }

    #[test]
    fn credit_codes_are_valid() {
        for department in Department::ALL {
            civitas_core::Uscc::parse(department.credit_code()).unwrap();
        }
        civitas_core::Uscc::parse(MUNICIPAL_DATA_BUREAU_CREDIT_CODE).unwrap();
    }
}
