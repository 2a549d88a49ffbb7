//! Grants and the one function that decides every exchange through the gateway.
//!
//! [`decide`] is deny by default. An exchange is allowed only when a grant of the consuming system
//! for the resource is valid at the request's time and covers at least one requested item; then the
//! platform policies ([`PlatformPolicies`]) may still forbid it. Every decision names the rule that
//! made it (`grant:<id>`, `no_grant`, `grant_expired:<id>`, `grant_not_yet_valid:<id>`,
//! `grant_revoked:<id>`, `items_not_granted`, `policy:<policy id>`), which goes into the audit
//! trail. [`explain`] runs the very same steps and records each of them.

mod index;

use std::collections::HashSet;

use civitas_core::access::{Grant, GrantedItem, SystemRef};
use civitas_core::catalog::{MaskKind, ResourceCode, ResourceKind, Sensitivity};
use civitas_core::{InvalidValue, RegionCode, Uscc, registry::Level, string_enum};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::{PlatformPolicies, PolicyOutcome, PolicyStep};

pub use index::GrantIndex;

pub type Result<T, E = GrantError> = std::result::Result<T, E>;

/// Why a grant cannot be indexed or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("a grant id must not be empty")]
    EmptyId,
    #[error("grant {id} is listed twice")]
    DuplicateId { id: String },
    #[error("grant {id} ends before it starts: valid_until must be later than valid_from")]
    EmptyValidity { id: String },
    #[error("grant {id} lists item {item:?} twice")]
    DuplicateItem { id: String, item: String },
    #[error("grant {id} lists an item with an empty code")]
    EmptyItemCode { id: String },
    #[error("there is no grant {id}")]
    UnknownGrant { id: String },
}

/// What the catalog says about one information item of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPolicy {
    pub code: String,
    pub sensitivity: Sensitivity,
    /// How the item is masked when it is personal and not granted in plaintext. A personal item
    /// without a kind is masked as [`MaskKind::Generic`], so forgetting to choose a kind never
    /// leaks the value.
    #[serde(default)]
    pub mask_kind: Option<MaskKind>,
}

impl ItemPolicy {
    pub fn is_personal(&self) -> bool {
        self.sensitivity == Sensitivity::Personal
    }

    pub fn effective_mask_kind(&self) -> MaskKind {
        self.mask_kind.unwrap_or(MaskKind::Generic)
    }
}

/// Whether a grant applies at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Valid,
    NotYetValid,
    Expired,
    Revoked,
}

/// Checks the rules [`GrantIndex`] relies on: a non-empty id, a period that is not empty, and
/// item codes that are neither empty nor listed twice. (The resource code is valid by its type.)
pub fn validate_grant(grant: &Grant) -> Result<()> {
    if grant.id.is_empty() {
        return Err(GrantError::EmptyId);
    }
    if grant.valid_until <= grant.valid_from {
        return Err(GrantError::EmptyValidity {
            id: grant.id.clone(),
        });
    }
    for (position, item) in grant.items.iter().enumerate() {
        if item.code.is_empty() {
            return Err(GrantError::EmptyItemCode {
                id: grant.id.clone(),
            });
        }
        if grant.items[..position]
            .iter()
            .any(|earlier| earlier.code == item.code)
        {
            return Err(GrantError::DuplicateItem {
                id: grant.id.clone(),
                item: item.code.clone(),
            });
        }
    }
    Ok(())
}

/// The grant's status at `at`. Revocation is checked first: a revoked grant is revoked even
/// outside its period. A revocation takes effect at `revoked_at`, so one scheduled ahead leaves
/// the grant valid until then.
///
/// This differs from `civitas_core::access::Grant::is_valid_at`, which treats any grant with a
/// `revoked_at` as invalid, scheduled or not. The gateway decides with this function.
pub fn grant_status(grant: &Grant, at: Timestamp) -> GrantStatus {
    if grant.revoked_at.is_some_and(|revoked_at| at >= revoked_at) {
        GrantStatus::Revoked
    } else if at < grant.valid_from {
        GrantStatus::NotYetValid
    } else if at >= grant.valid_until {
        GrantStatus::Expired
    } else {
        GrantStatus::Valid
    }
}

/// The grant's entry for item `code`, if it covers that item.
pub fn granted_item<'a>(grant: &'a Grant, code: &str) -> Option<&'a GrantedItem> {
    grant.items.iter().find(|item| item.code == code)
}

/// What is known about the consuming system when it asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerFacts {
    pub system: SystemRef,
    /// Region of the system's organization.
    pub region: RegionCode,
    /// Administrative level of the system's organization.
    pub level: Level,
}

/// What the catalog says about the resource being read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceFacts {
    pub code: ResourceCode,
    pub kind: ResourceKind,
    pub provider: Uscc,
    pub provider_region: RegionCode,
    /// The information items. A resource without items (a video stream, a file) is granted as a
    /// whole.
    pub items: Vec<ItemPolicy>,
}

impl ResourceFacts {
    pub fn has_personal(&self) -> bool {
        self.items.iter().any(ItemPolicy::is_personal)
    }

    pub fn item(&self, code: &str) -> Option<&ItemPolicy> {
        self.items.iter().find(|item| item.code == code)
    }
}

/// Local time facts at the node: the hour (0 to 23) and the day of the week (1 = Monday to
/// 7 = Sunday). Decisions take them as input, computed in the node's time zone, so that the crate
/// reads no clock and knows no time zone database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "LocalTimeFields")]
pub struct LocalTime {
    hour: u8,
    weekday: u8,
}

#[derive(Deserialize)]
struct LocalTimeFields {
    hour: u8,
    weekday: u8,
}

impl TryFrom<LocalTimeFields> for LocalTime {
    type Error = InvalidValue;

    fn try_from(fields: LocalTimeFields) -> Result<LocalTime, InvalidValue> {
        LocalTime::new(fields.hour, fields.weekday)
    }
}

impl LocalTime {
    pub fn new(hour: u8, weekday: u8) -> Result<LocalTime, InvalidValue> {
        if hour > 23 {
            return Err(InvalidValue::new(format!("an hour is 0 to 23, got {hour}")));
        }
        if !(1..=7).contains(&weekday) {
            return Err(InvalidValue::new(format!(
                "a weekday is 1 (monday) to 7 (sunday), got {weekday}"
            )));
        }
        Ok(LocalTime { hour, weekday })
    }

    /// The local time at `at` in a zone with the fixed offset `offset` (China uses +08:00 all
    /// year, so a fixed offset is exact there).
    pub fn at_offset(at: Timestamp, offset: jiff::tz::Offset) -> LocalTime {
        let local = offset.to_datetime(at);
        LocalTime {
            hour: local.hour() as u8,
            weekday: local.weekday().to_monday_one_offset() as u8,
        }
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn weekday(self) -> u8 {
        self.weekday
    }
}

/// One exchange to decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRequest {
    pub consumer: ConsumerFacts,
    pub resource: ResourceFacts,
    /// The items asked for; `None` asks for everything the grant allows.
    #[serde(default)]
    pub requested_items: Option<Vec<String>>,
    pub at: Timestamp,
    pub local_time: LocalTime,
    /// Whether the gateway classes this exchange as a bulk read (an export, a batch query).
    #[serde(default)]
    pub bulk: bool,
    /// Rows asked for or announced by the provider; 0 when unknown.
    #[serde(default)]
    pub expected_rows: u64,
}

string_enum! {
    /// Why an exchange was refused.
    pub enum DenyReason {
        /// The consumer holds no grant for the resource.
        NoGrant => "no_grant",
        GrantExpired => "grant_expired",
        GrantNotYetValid => "grant_not_yet_valid",
        GrantRevoked => "grant_revoked",
        /// A valid grant exists but covers none of the requested items.
        ItemsNotGranted => "items_not_granted",
        /// A platform policy forbids the exchange.
        ForbiddenByPolicy => "forbidden_by_policy",
        /// A platform policy could not be evaluated; the exchange is refused rather than let
        /// through unchecked.
        PolicyFailed => "policy_failed",
    }
}

/// An item delivered masked, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedItem {
    pub code: String,
    pub kind: MaskKind,
}

/// The outcome of [`decide`]. `rule` names what decided it, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// The exchange may go ahead. `deliver`, `mask` and `drop` are disjoint: items in `deliver`
    /// go out as they are, items in `mask` go out masked with their kind, and every other item
    /// (listed in `drop`: items of the resource not granted or not requested, and requested codes
    /// the resource does not have) is removed by the gateway. An item in none of the lists must be
    /// dropped too: the gateway delivers only what is listed.
    Allow {
        grant_id: String,
        rule: String,
        deliver: Vec<String>,
        mask: Vec<MaskedItem>,
        drop: Vec<String>,
    },
    Deny {
        reason: DenyReason,
        rule: String,
    },
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The rule that decided, such as `grant:g-1` or `policy:personal-stays-in-city`.
    pub fn rule(&self) -> &str {
        match self {
            Decision::Allow { rule, .. } | Decision::Deny { rule, .. } => rule,
        }
    }

    fn deny(reason: DenyReason, rule: String) -> Decision {
        Decision::Deny { reason, rule }
    }
}

/// What happens to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    Deliver,
    Mask,
    Drop,
}

/// The record of [`explain`]: the decision and every step that led to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub decision: Decision,
    /// Every grant of the consumer for the resource, in id order.
    pub grant_candidates: Vec<GrantCandidate>,
    /// Items of the chosen grant's plan; empty when no valid grant was found.
    pub items: Vec<ItemStep>,
    /// Every platform policy, evaluated only once a grant allowed the exchange.
    pub policies: Vec<PolicyStep>,
    /// The same story in sentences, in order, for people.
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCandidate {
    pub grant_id: String,
    pub status: GrantStatus,
    /// Items the grant would deliver (plaintext or masked); 0 for grants that are not valid.
    pub items_delivered: usize,
    pub chosen: bool,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemStep {
    pub code: String,
    pub outcome: ItemOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_kind: Option<MaskKind>,
    pub note: String,
}

/// The items one grant would deliver for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ItemPlan {
    pub(crate) deliver: Vec<String>,
    /// The sensitivity of each item of `deliver`, in the same order, so that the platform
    /// policies' facts are sorted without looking items up again. May be left empty (tests do);
    /// the items are then looked up.
    pub(crate) deliver_sensitivity: Vec<Sensitivity>,
    pub(crate) mask: Vec<MaskedItem>,
    pub(crate) drop: Vec<String>,
    /// Filled only when explaining.
    pub(crate) steps: Vec<ItemStep>,
}

impl ItemPlan {
    fn delivered_count(&self) -> usize {
        self.deliver.len() + self.mask.len()
    }
}

/// Decides one exchange. Pure: the same inputs always give the same decision.
///
/// Steps, in order:
/// 1. the grants of the consumer for the resource are looked up; none → `no_grant`;
/// 2. grants not valid at `request.at` are set aside; when none is valid, the refusal names the
///    most recent of them (latest `valid_until`, then smallest id) as `grant_expired:<id>`,
///    `grant_not_yet_valid:<id>` or `grant_revoked:<id>`;
/// 3. each valid grant's item plan is made: an item is delivered when the resource has it, the
///    grant covers it and it was requested (or nothing was specified); personal items are masked
///    unless the grant item says plaintext; everything else is dropped;
/// 4. when several grants are valid, the widest wins: most items delivered, then most delivered
///    in plaintext, then the latest `valid_until`, then the smallest id. A grant is never merged
///    with another, so the audit trail names the one grant that allowed the exchange;
/// 5. if the winner delivers nothing → `items_not_granted` (a resource without items is granted
///    as a whole and skips this step);
/// 6. the platform policies are evaluated (or their outcome for the same facts is taken from
///    the memo, see [`PlatformPolicies::set_memo_capacity`]); a matching forbid → `policy:<id>`
///    (the smallest id when several match); a policy that fails to evaluate also refuses, naming
///    that policy;
/// 7. otherwise the exchange is allowed as `grant:<id>`.
pub fn decide(
    request: &DecisionRequest,
    grants: &GrantIndex,
    policies: &PlatformPolicies,
) -> Decision {
    evaluate(request, grants, policies, None)
}

/// Decides like [`decide`] and records every step: grant candidates and why they were set aside,
/// each item's fate, and each platform policy and whether it matched.
pub fn explain(
    request: &DecisionRequest,
    grants: &GrantIndex,
    policies: &PlatformPolicies,
) -> Explanation {
    let mut explanation = Explanation {
        decision: Decision::deny(DenyReason::NoGrant, "no_grant".to_owned()),
        grant_candidates: Vec::new(),
        items: Vec::new(),
        policies: Vec::new(),
        steps: Vec::new(),
    };
    explanation.decision = evaluate(request, grants, policies, Some(&mut explanation));
    explanation
}

/// The one implementation behind [`decide`] and [`explain`], so that an explanation can never
/// disagree with the decision it explains. `trace` is `None` on the hot path.
fn evaluate(
    request: &DecisionRequest,
    grants: &GrantIndex,
    policies: &PlatformPolicies,
    mut trace: Option<&mut Explanation>,
) -> Decision {
    let consumer = &request.consumer.system;
    let resource = &request.resource;
    let recording = trace.is_some();

    let mut candidates: Vec<&Grant> = grants.grants_for(consumer, &resource.code).collect();
    if candidates.is_empty() {
        if let Some(trace) = trace.as_deref_mut() {
            trace.steps.push(format!(
                "{consumer} holds no grant for resource {}",
                resource.code
            ));
        }
        return Decision::deny(DenyReason::NoGrant, "no_grant".to_owned());
    }
    if recording {
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
    }

    // The best valid grant so far with its plan, and the most recent invalid one.
    let mut best: Option<(&Grant, ItemPlan)> = None;
    let mut most_recent_invalid: Option<(&Grant, GrantStatus)> = None;
    for grant in &candidates {
        let status = grant_status(grant, request.at);
        if status != GrantStatus::Valid {
            let more_recent = most_recent_invalid.is_none_or(|(current, _)| {
                (grant.valid_until, std::cmp::Reverse(&grant.id))
                    > (current.valid_until, std::cmp::Reverse(&current.id))
            });
            if more_recent {
                most_recent_invalid = Some((grant, status));
            }
            if let Some(trace) = trace.as_deref_mut() {
                trace.grant_candidates.push(GrantCandidate {
                    grant_id: grant.id.clone(),
                    status,
                    items_delivered: 0,
                    chosen: false,
                    note: invalid_grant_note(grant, status),
                });
            }
            continue;
        }
        let plan = plan_items(request, grant, recording);
        if let Some(trace) = trace.as_deref_mut() {
            trace.grant_candidates.push(GrantCandidate {
                grant_id: grant.id.clone(),
                status,
                items_delivered: plan.delivered_count(),
                chosen: false,
                note: format!(
                    "valid until {}; would deliver {} item(s), {} of them masked",
                    grant.valid_until,
                    plan.delivered_count(),
                    plan.mask.len()
                ),
            });
        }
        let wider = best.as_ref().is_none_or(|(current, current_plan)| {
            grant_rank(grant, &plan) > grant_rank(current, current_plan)
        });
        if wider {
            best = Some((grant, plan));
        }
    }

    let Some((grant, plan)) = best else {
        // `candidates` is not empty, so an invalid one was recorded.
        let Some((grant, status)) = most_recent_invalid else {
            return Decision::deny(DenyReason::NoGrant, "no_grant".to_owned());
        };
        let (reason, prefix) = match status {
            GrantStatus::Expired => (DenyReason::GrantExpired, "grant_expired"),
            GrantStatus::NotYetValid => (DenyReason::GrantNotYetValid, "grant_not_yet_valid"),
            GrantStatus::Revoked | GrantStatus::Valid => {
                (DenyReason::GrantRevoked, "grant_revoked")
            }
        };
        if let Some(trace) = trace.as_deref_mut() {
            trace.steps.push(format!(
                "no grant of {consumer} for {} is valid at {}; the most recent is {}: {}",
                resource.code,
                request.at,
                grant.id,
                invalid_grant_note(grant, status)
            ));
        }
        return Decision::deny(reason, format!("{prefix}:{}", grant.id));
    };

    if let Some(trace) = trace.as_deref_mut() {
        for candidate in &mut trace.grant_candidates {
            candidate.chosen = candidate.grant_id == grant.id;
        }
        trace.steps.push(format!(
            "grant {} is the widest valid grant of {consumer} for {}",
            grant.id, resource.code
        ));
        trace.items = plan.steps.clone();
    }

    if plan.delivered_count() == 0 && !resource.items.is_empty() {
        if let Some(trace) = trace.as_deref_mut() {
            trace.steps.push(format!(
                "grant {} covers none of the requested items",
                grant.id
            ));
        }
        return Decision::deny(DenyReason::ItemsNotGranted, "items_not_granted".to_owned());
    }

    let policy_trace = trace.as_deref_mut().map(|trace| &mut trace.policies);
    match policies.evaluate(request, &plan, policy_trace, false) {
        PolicyOutcome::Permitted => {}
        PolicyOutcome::Forbidden { policy_id } => {
            if let Some(trace) = trace.as_deref_mut() {
                trace
                    .steps
                    .push(format!("platform policy {policy_id} forbids the exchange"));
            }
            return Decision::deny(DenyReason::ForbiddenByPolicy, format!("policy:{policy_id}"));
        }
        PolicyOutcome::Failed { policy_id, message } => {
            if let Some(trace) = trace.as_deref_mut() {
                trace.steps.push(format!(
                    "platform policy {policy_id} could not be evaluated ({message}); refusing rather than letting the exchange through unchecked"
                ));
            }
            return Decision::deny(DenyReason::PolicyFailed, format!("policy:{policy_id}"));
        }
    }

    if let Some(trace) = trace {
        trace.steps.push(format!(
            "allowed by grant {}: {} item(s) in plaintext, {} masked, {} dropped",
            grant.id,
            plan.deliver.len(),
            plan.mask.len(),
            plan.drop.len()
        ));
    }
    Decision::Allow {
        grant_id: grant.id.clone(),
        rule: format!("grant:{}", grant.id),
        deliver: plan.deliver,
        mask: plan.mask,
        drop: plan.drop,
    }
}

/// The order in which valid grants compete; the greatest wins. See [`decide`], step 4.
fn grant_rank<'a>(
    grant: &'a Grant,
    plan: &ItemPlan,
) -> (usize, usize, Timestamp, std::cmp::Reverse<&'a str>) {
    (
        plan.delivered_count(),
        plan.deliver.len(),
        grant.valid_until,
        std::cmp::Reverse(grant.id.as_str()),
    )
}

fn invalid_grant_note(grant: &Grant, status: GrantStatus) -> String {
    match (status, grant.revoked_at) {
        (GrantStatus::Revoked, Some(revoked_at)) => format!("revoked at {revoked_at}"),
        (GrantStatus::NotYetValid, _) => format!("not valid before {}", grant.valid_from),
        (GrantStatus::Expired, _) => format!("expired at {}", grant.valid_until),
        _ => "valid".to_owned(),
    }
}

/// Requested item codes up to this many are compared one by one; longer lists are put in a set.
const FEW_REQUESTED_ITEMS: usize = 16;

/// Works out what `grant` delivers of `request`'s resource. Items are listed in the resource's
/// order, then requested codes the resource does not have.
fn plan_items(request: &DecisionRequest, grant: &Grant, recording: bool) -> ItemPlan {
    let requested = request.requested_items.as_deref();
    // A consumer names the items it asks for (a header of the gateway, a field of the explain
    // request), so the list can be long: beyond a few codes they are looked up in a set, which
    // keeps the plan linear in the list rather than in the list times the resource's items.
    let requested_set: Option<HashSet<&str>> = requested
        .filter(|codes| codes.len() > FEW_REQUESTED_ITEMS)
        .map(|codes| codes.iter().map(String::as_str).collect());
    let is_requested = |code: &str| match (&requested_set, requested) {
        (Some(set), _) => set.contains(code),
        (None, Some(codes)) => codes.iter().any(|requested| requested == code),
        (None, None) => true,
    };
    let mut plan = ItemPlan::default();
    // Grants usually list their items in the resource's order, so the item after the last one
    // found is tried first: one comparison per item instead of a search.
    let mut next_granted = 0;
    for item in &request.resource.items {
        let is_requested = is_requested(&item.code);
        let granted = match grant.items.get(next_granted) {
            Some(candidate) if candidate.code == item.code => {
                next_granted += 1;
                Some(candidate)
            }
            _ => {
                let position = grant.items.iter().position(|other| other.code == item.code);
                if let Some(position) = position {
                    next_granted = position + 1;
                }
                position.map(|position| &grant.items[position])
            }
        };
        let (outcome, note) = match (is_requested, granted) {
            (false, _) => (ItemOutcome::Drop, "not requested"),
            (true, None) => (ItemOutcome::Drop, "not covered by the grant"),
            (true, Some(_)) if !item.is_personal() => {
                (ItemOutcome::Deliver, "granted; not personal, never masked")
            }
            (true, Some(granted)) if granted.plaintext => {
                (ItemOutcome::Deliver, "personal, granted in plaintext")
            }
            (true, Some(_)) => (ItemOutcome::Mask, "personal, delivered masked"),
        };
        let mask_kind = (outcome == ItemOutcome::Mask).then(|| item.effective_mask_kind());
        match outcome {
            ItemOutcome::Deliver => {
                plan.deliver.push(item.code.clone());
                plan.deliver_sensitivity.push(item.sensitivity);
            }
            ItemOutcome::Mask => plan.mask.push(MaskedItem {
                code: item.code.clone(),
                kind: item.effective_mask_kind(),
            }),
            ItemOutcome::Drop => plan.drop.push(item.code.clone()),
        }
        if recording {
            plan.steps.push(ItemStep {
                code: item.code.clone(),
                outcome,
                mask_kind,
                note: note.to_owned(),
            });
        }
    }
    // Requested codes the resource does not have, each listed once.
    let resource_codes: Option<HashSet<&str>> = requested_set.as_ref().map(|_| {
        request
            .resource
            .items
            .iter()
            .map(|item| item.code.as_str())
            .collect()
    });
    let mut unknown_listed: HashSet<&str> = HashSet::new();
    for code in requested.unwrap_or_default() {
        let known = match &resource_codes {
            Some(codes) => codes.contains(code.as_str()),
            None => request.resource.item(code).is_some(),
        };
        let unknown = !known && unknown_listed.insert(code.as_str());
        if unknown {
            plan.drop.push(code.clone());
            if recording {
                plan.steps.push(ItemStep {
                    code: code.clone(),
                    outcome: ItemOutcome::Drop,
                    mask_kind: None,
                    note: "requested, but the resource has no such item".to_owned(),
                });
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests;
