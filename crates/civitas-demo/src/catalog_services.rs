//! Upstreams for the generated part of the demo city's catalog, on one loopback port:
//!
//! - `GET /interfaces/{resource}/records?page=N` and `GET /interfaces/{resource}/records/{n}`
//!   answer records of any generated interface resource, with one field per information item,
//!   deterministic from the resource code and the record number. Personal items carry values of
//!   the [`Population`] (ID numbers, names, addresses), so the gateway's masking and subject index
//!   see real shapes. Every answer has the form `{"resource": …, "records": [{item: value, …}]}`,
//!   which the services map with `$.records[*].{item}`.
//! - `GET /video/play/{device}?consumer=…&expires=…&signature=…` stands in for the city's video
//!   platform: it checks the playback URL the gateway signed (HMAC-SHA256 with the node's video key
//!   over `{device}|{consumer}|{expires}`) and answers an HLS playlist, or 403 when the URL is
//!   forged or expired.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civitas_core::catalog::{DataType, InformationItem, MaskKind, Sensitivity};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::citizens::Population;

/// Records a generated interface resource has: pages of [`PAGE_SIZE`] up to this many.
pub const RECORDS_PER_RESOURCE: u64 = 1_000;
pub const PAGE_SIZE: u64 = 20;

/// A generated interface resource the server answers for.
#[derive(Debug, Clone)]
pub struct InterfaceSpec {
    pub resource: String,
    pub items: Vec<InformationItem>,
}

struct CatalogState {
    population: Arc<Population>,
    interfaces: RwLock<HashMap<String, Arc<Vec<InformationItem>>>>,
    video_key: [u8; 32],
}

/// The running catalog upstreams. Dropping this value stops them too, without waiting.
pub struct CatalogServices {
    address: SocketAddr,
    state: Arc<CatalogState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl CatalogServices {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answers for these interface resources from now on.
    pub fn add_interfaces(&self, specs: impl IntoIterator<Item = InterfaceSpec>) {
        let mut interfaces = self.state.interfaces.write().expect("interfaces lock");
        for spec in specs {
            interfaces.insert(spec.resource, Arc::new(spec.items));
        }
    }

    /// The upstream base URL of a generated interface resource's service.
    pub fn interface_upstream(&self, resource: &str) -> String {
        format!("http://{}/interfaces/{resource}", self.address)
    }

    /// The upstream base URL of the video platform: the gateway appends `/play/{device}?…`.
    pub fn video_upstream(&self) -> String {
        format!("http://{}/video", self.address)
    }

    /// Stops accepting connections and waits for requests in flight.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.stop.send_replace(true);
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for CatalogServices {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Starts the catalog upstreams on a port of `bind` chosen by the system; they answer for the
/// interfaces given to [`CatalogServices::add_interfaces`].
pub async fn start_catalog_services(
    population: Arc<Population>,
    video_key: [u8; 32],
    bind: IpAddr,
) -> io::Result<CatalogServices> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, 0)).await?;
    let address = listener.local_addr()?;
    let state = Arc::new(CatalogState {
        population,
        interfaces: RwLock::default(),
        video_key,
    });
    let router = Router::new()
        .route("/interfaces/{resource}/records", get(records_page))
        .route("/interfaces/{resource}/records/{number}", get(one_record))
        .route("/video/play/{device}", get(play))
        .with_state(state.clone());
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|&stop| stop).await;
            })
            .await
    });
    Ok(CatalogServices {
        address,
        state,
        stop,
        task: Some(task),
    })
}

impl CatalogState {
    fn interfaces_of(&self, resource: &str) -> Option<Arc<Vec<InformationItem>>> {
        self.interfaces
            .read()
            .expect("interfaces lock")
            .get(resource)
            .cloned()
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

fn not_found(detail: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": detail }).to_string(),
    )
        .into_response()
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn records_page(
    State(state): State<Arc<CatalogState>>,
    Path(resource): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(items) = state.interfaces_of(&resource) else {
        return not_found(format!("no interface resource {resource}"));
    };
    let page = query.page.unwrap_or(1).max(1);
    let first = (page - 1) * PAGE_SIZE + 1;
    let records: Vec<Value> = (first..first + PAGE_SIZE)
        .take_while(|&number| number <= RECORDS_PER_RESOURCE)
        .map(|number| record(&state.population, &resource, &items, number))
        .collect();
    json_response(json!({
        "resource": resource,
        "page": page,
        "total": RECORDS_PER_RESOURCE,
        "records": records,
    }))
}

async fn one_record(
    State(state): State<Arc<CatalogState>>,
    Path((resource, number)): Path<(String, u64)>,
) -> Response {
    let Some(items) = state.interfaces_of(&resource) else {
        return not_found(format!("no interface resource {resource}"));
    };
    if !(1..=RECORDS_PER_RESOURCE).contains(&number) {
        return not_found(format!("{resource} has no record {number}"));
    }
    json_response(json!({
        "resource": resource,
        "records": [record(&state.population, &resource, &items, number)],
    }))
}

/// FNV-1a: a stable hash, so records are the same on every run and platform.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Record `number` of `resource`: one value per item, shaped by its type and mask.
fn record(
    population: &Population,
    resource: &str,
    items: &[InformationItem],
    number: u64,
) -> Value {
    let seed = stable_hash(&[resource.as_bytes(), &number.to_le_bytes()]);
    let citizen = population.citizen((seed % population.len() as u64) as usize);
    let mut fields = Map::new();
    for item in items {
        let value_seed = stable_hash(&[&seed.to_le_bytes(), item.code.as_bytes()]);
        // Personal items the catalog left without a mask kind get the one their code suggests,
        // as the gateway would mask them.
        let kind = item.mask.or_else(|| {
            (item.sensitivity == Sensitivity::Personal)
                .then(|| civitas_access::mask::mask_kind_for(&item.code, item.data_type.as_str()))
                .flatten()
        });
        let value = match (kind, item.data_type) {
            (Some(MaskKind::CitizenId), _) => json!(citizen.id_number()),
            (Some(MaskKind::Name), _) => json!(citizen.name()),
            (Some(MaskKind::Mobile), _) => json!(format!(
                "1{}{:09}",
                3 + value_seed % 7,
                (value_seed / 7) % 1_000_000_000
            )),
            (Some(MaskKind::Address), _) => match citizen.household() {
                Some(household) => json!(household.address().to_string()),
                None => json!(format!("南京市秦淮区中华路{}号", 1 + value_seed % 400)),
            },
            (Some(MaskKind::BankCard), _) => {
                json!(format!("6222{:015}", value_seed % 1_000_000_000_000_000))
            }
            (Some(MaskKind::FreeText), _) => {
                json!(format!("{}于第{number}号记录中说明的情况", citizen.name()))
            }
            (_, DataType::Integer) => json!(value_seed % 10_000),
            (_, DataType::Decimal) => json!((value_seed % 1_000_000) as f64 / 100.0),
            (_, DataType::Boolean) => json!(value_seed.is_multiple_of(2)),
            (_, DataType::Date) => json!(format!(
                "20{:02}-{:02}-{:02}",
                15 + value_seed % 11,
                1 + (value_seed / 11) % 12,
                1 + (value_seed / 132) % 28
            )),
            (_, DataType::Datetime) => json!(format!(
                "2026-{:02}-{:02}T{:02}:{:02}:00+08:00",
                1 + value_seed % 11,
                1 + (value_seed / 11) % 28,
                (value_seed / 308) % 24,
                (value_seed / 7392) % 60
            )),
            (_, DataType::Binary) => json!(format!("{value_seed:016x}")),
            (_, DataType::String) => json!(format!("{}{}", item.name, 1 + value_seed % 9_999)),
        };
        fields.insert(item.code.clone(), value);
    }
    Value::Object(fields)
}

#[derive(Deserialize)]
struct PlayQuery {
    consumer: String,
    expires: i64,
    signature: String,
}

async fn play(
    State(state): State<Arc<CatalogState>>,
    Path(device): Path<String>,
    Query(query): Query<PlayQuery>,
) -> Response {
    let forbidden = |detail: &str| {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "error": detail }).to_string(),
        )
            .into_response()
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&state.video_key).expect("any key length");
    mac.update(format!("{device}|{}|{}", query.consumer, query.expires).as_bytes());
    let Some(signature) = decode_hex(&query.signature) else {
        return forbidden("the signature is not hexadecimal");
    };
    if mac.verify_slice(&signature).is_err() {
        return forbidden("the playback URL is not signed by this node");
    }
    if query.expires < jiff::Timestamp::now().as_second() {
        return forbidden("the playback URL has expired");
    }
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:2.0,\nsegments/{device}/0.ts\n#EXTINF:2.0,\nsegments/{device}/1.ts\n"
    );
    (
        [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
        playlist,
    )
        .into_response()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_and_typed() {
        let population = Population::generate(7, 50, jiff::civil::date(2026, 11, 1)).unwrap();
        let items = vec![
            InformationItem {
                code: "id_number".into(),
                name: "公民身份号码".into(),
                data_type: DataType::String,
                sensitivity: Sensitivity::Personal,
                mask: Some(MaskKind::CitizenId),
            },
            InformationItem {
                code: "count".into(),
                name: "数量".into(),
                data_type: DataType::Integer,
                sensitivity: Sensitivity::Internal,
                mask: None,
            },
        ];
        let first = record(&population, "320100-D05-000001", &items, 3);
        assert_eq!(first, record(&population, "320100-D05-000001", &items, 3));
        assert_ne!(first, record(&population, "320100-D05-000001", &items, 4));
        let id = first["id_number"].as_str().unwrap();
        assert!(population.find(id).is_some(), "{first}");
        assert!(first["count"].is_u64());
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
