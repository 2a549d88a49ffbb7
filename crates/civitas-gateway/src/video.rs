//! Video: a granted consumer gets a short-lived signed playback URL for a camera; the request is
//! decided and ledgered like any exchange, and the video itself never passes through.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use civitas_access::decision::{Decision, ResourceFacts};
use civitas_core::{access::SystemRef, catalog::ResourceKind};
use hmac::{Hmac, Mac};
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;
use sha2::Sha256;

use crate::{
    Gateway,
    body::{GatewayBody, full, sha256},
    exchange::Exchange,
    problem::Problem,
    snapshot::CompiledService,
};

impl Gateway {
    /// `POST /x/{org}/{system}/video/{device}/play`: a short-lived signed playback URL for a
    /// granted camera. Video never passes through the gateway.
    pub(crate) async fn play(
        &self,
        consumer: SystemRef,
        organization: &str,
        system: &str,
        device: &str,
        started: Instant,
        durable_later: bool,
    ) -> Response<GatewayBody> {
        let not_found = |detail: String| {
            Problem::new(StatusCode::NOT_FOUND, "no_service", detail).response(None)
        };
        let resource = match self.inner.store.video_resource(device).await {
            Ok(resource) => resource,
            Err(civitas_store::StoreError::NotFound { .. }) => {
                return not_found(format!("no video resource for camera {device}"));
            }
            Err(error) => {
                tracing::error!(%error, "looking up a camera");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the catalog is unavailable",
                )
                .response(None);
            }
        };
        let provider_matches = resource.draft.provider.as_str() == organization
            && resource
                .draft
                .provider_system
                .as_ref()
                .is_none_or(|s| s.as_str() == system);
        let Some(video_service) = self.inner.snapshot.read().expect("snapshot lock").service(
            organization,
            system,
            "video",
        ) else {
            return not_found(format!("{organization}/{system} offers no video service"));
        };
        if !provider_matches {
            return not_found(format!(
                "camera {device} is not provided by {organization}/{system}"
            ));
        }
        let facts = ResourceFacts {
            code: resource.draft.code.clone(),
            kind: ResourceKind::Video,
            provider: resource.draft.provider.clone(),
            provider_region: video_service.resource.provider_region,
            items: Vec::new(),
        };
        let service = Arc::new(CompiledService {
            resource: facts.clone(),
            ..CompiledService::compile(
                video_service.service.clone(),
                &resource,
                video_service.resource.provider_region,
            )
        });
        let mut exchange = Exchange::begin(
            &consumer,
            service,
            "POST",
            format!("/{device}/play"),
            started,
            durable_later,
        );
        let now = exchange.at;
        let Some(decision) = self.decide_for(&consumer, facts, None, None, now) else {
            return self.refuse_unknown_consumer(exchange).await;
        };
        match decision {
            Decision::Deny { reason, rule } => {
                let what = format!("play camera {device}");
                self.refuse_denied(exchange, &what, &reason, rule).await
            }
            Decision::Allow { grant_id, rule, .. } => {
                exchange.grant = Some(grant_id.clone());
                exchange.rule = Some(rule);
                if let Err((rule, problem)) = self.within_limits(&grant_id) {
                    exchange.rule = Some(rule);
                    return self.refuse(exchange, problem).await;
                }
                exchange.allowed = true;
                let expires = now
                    + jiff::SignedDuration::try_from(self.inner.config.playback_validity)
                        .expect("a short duration");
                let expires_unix = expires.as_second();
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.config.video_key)
                    .expect("any key length");
                mac.update(format!("{device}|{consumer}|{expires_unix}").as_bytes());
                let signature: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let url = format!(
                    "{}/play/{device}?consumer={consumer}&expires={expires_unix}&signature={signature}",
                    video_service.upstream
                );
                let body = Bytes::from(
                    json!({ "device": device, "url": url, "expires_at": expires.to_string() })
                        .to_string(),
                );
                let digest = sha256(&body);
                let mut response = Response::new(full(body.clone()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                self.complete(exchange, response, body.len() as u64, digest)
                    .await
            }
        }
    }
}
