//! Platform policies: platform-wide rules that platform admins write in Cedar.
//!
//! Grants are the permits of civitas: a data owner's approval, recorded per consumer and resource.
//! Platform policies only take permission away, so they are `forbid` policies, and they are
//! evaluated together with one implicit base permit (`permit (principal, action, resource);`).
//! Cedar's rule that a matching forbid beats any permit then gives exactly "allowed by the grant
//! unless a platform policy forbids". A `permit` written by an admin would be meaningless under the
//! base permit (and dangerous if the base permit were ever dropped), so validation rejects it.
//!
//! Policies are validated in strict mode against the schema in `civitas.cedarschema` (see
//! `POLICIES.md`), so a policy that reads an attribute which does not exist is refused when it is
//! written, not silently skipped at run time. Should a policy still fail to evaluate, the exchange
//! is refused (fail closed): Cedar skips a forbid that errors, which would let data out unchecked.
//!
//! A stored policy may stop validating without being touched, when Cedar or the schema is
//! upgraded. The gateway loads stored policies with [`PlatformPolicies::from_stored`], which
//! never leaves one out, since that would silently allow what it forbade: a policy that still
//! parses as one forbid but no longer type-checks is evaluated as written (it forbids where it
//! matches; where it fails to evaluate, the exchange is refused as above), and one that cannot be
//! read at all cannot be scoped to any exchange, so every exchange the policies decide is refused
//! naming it until an admin fixes or deactivates it. [`PolicyStatus`] says how each fared; the
//! write path ([`PlatformPolicies::validate`], [`PlatformPolicies::insert`]) stays strict.
//!
//! Evaluating Cedar is most of the cost of a decision, and a gateway decides the same exchanges
//! over and over. The outcome is a pure function of the facts the policies can see (gathered in
//! `PolicyFacts`), the policies and the directory, so [`PlatformPolicies`] keeps a memo of
//! outcomes keyed by a 128-bit keyed hash of those facts. Changing the policies or the directory
//! starts a new generation, and entries of older generations are never used. The memo is bounded
//! and sharded, so that many threads can decide with one `&PlatformPolicies`; see
//! [`PlatformPolicies::set_memo_capacity`] and `POLICIES.md`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{
    ActionConstraint, AuthorizationError, Authorizer, Context, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, EvalResult, Expression, Policy, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator, eval_expression, pst,
};
use civitas_core::access::SystemRef;
use civitas_core::catalog::{ResourceCode, ResourceKind, Sensitivity};
use civitas_core::{Code, RegionCode, Uscc};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};

use crate::decision::{ConsumerFacts, DecisionRequest, ItemPlan, ResourceFacts};

mod memo;

pub use memo::MemoStats;
use memo::{DEFAULT_CAPACITY, Memo};

pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// The Cedar schema platform policies are written against, in Cedar schema syntax.
pub const SCHEMA_TEXT: &str = include_str!("civitas.cedarschema");

/// Id of the implicit base permit. It is not a valid [`Code`], so no platform policy can take it.
const BASE_PERMIT_ID: &str = "__civitas_base_permit";

/// The rule named when the Cedar request itself could not be built. Unreachable with the inputs
/// this crate builds, but refused like a failing policy rather than assumed impossible.
pub const POLICY_INPUT_RULE_ID: &str = "__civitas_policy_input";

static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(SCHEMA_TEXT).expect("the shipped civitas schema is valid");
    Validator::new(schema)
});

/// Names used in every request, parsed once: building an entity uid from a parsed type name is
/// far cheaper than parsing `Civitas::System::"..."` per call.
struct CedarNames {
    organization: EntityTypeName,
    system: EntityTypeName,
    resource: EntityTypeName,
    read: EntityUid,
    play: EntityUid,
}

static NAMES: LazyLock<CedarNames> = LazyLock::new(|| {
    let type_name =
        |name: &str| EntityTypeName::from_str(name).expect("civitas entity type names are valid");
    let action = type_name("Civitas::Action");
    CedarNames {
        organization: type_name("Civitas::Organization"),
        system: type_name("Civitas::System"),
        resource: type_name("Civitas::Resource"),
        read: EntityUid::from_type_name_and_id(action.clone(), EntityId::new("read")),
        play: EntityUid::from_type_name_and_id(action, EntityId::new("play")),
    }
});

static BASE_PERMIT: LazyLock<Policy> = LazyLock::new(|| {
    Policy::parse(
        Some(PolicyId::new(BASE_PERMIT_ID)),
        "permit (principal, action, resource);",
    )
    .expect("the base permit parses")
});

/// The most policies of one action chained into one expression for the fast path (see
/// `ActionPolicies::first_forbid`). The chain nests one `if` per policy, and Cedar parses,
/// evaluates and drops expressions recursively, so a chain of thousands would overflow the
/// stack; more policies than this are evaluated by Cedar's authorizer, one at a time.
const MAX_CHAINED_POLICIES: usize = 64;

/// The most operators, brackets and keywords that nest (`(`, `[`, `{`, `.`, `!`, `&&`, `if`,
/// `has` ...) one policy may hold, counting each character of an operator. Cedar parses,
/// type-checks and drops a policy recursively, so one nested thousands deep (`((((...))))`,
/// `a && a && ...`) would overflow the stack and abort the whole process; every level of nesting
/// takes at least one of these, so the count bounds the depth. Real platform rules need a few
/// dozen.
const MAX_POLICY_OPERATORS: usize = 256;

/// The deepest nesting of brackets (`(`, `[`, `{`) in one policy. Cedar's parser takes a dozen
/// stack frames per bracket, so brackets are limited on their own, far below the operators.
const MAX_POLICY_NESTING: usize = 32;

/// The most `if` expressions in one policy: Cedar's type checker takes time exponential in how
/// deeply they nest (25 levels of `if true then` take seconds, 40 would take hours).
const MAX_POLICY_IFS: usize = 12;

/// A place in a policy's text, counted from 1. Columns count characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One thing wrong with a policy text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(Position { line, column }) => {
                write!(f, "line {line}, column {column}: {}", self.message)
            }
            None => f.write_str(&self.message),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (number, problem) in self.0.iter().enumerate() {
            if number > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Why a platform policy was refused. The display text is meant for the admin who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyError {
    #[error("policy id {id:?} is not valid: {message}")]
    InvalidId { id: String, message: String },
    #[error("policy {id} has a syntax error: {}", Problems(.problems))]
    Syntax { id: String, problems: Vec<Problem> },
    #[error("policy {id} does not type-check against the civitas schema: {}", Problems(.problems))]
    Schema { id: String, problems: Vec<Problem> },
    #[error(
        "policy {id} is a permit, but platform policies are forbid-only: grants are the permits, so write `forbid (principal, action, resource) when {{ ... }};` for what must never happen"
    )]
    NotForbid { id: String },
    #[error("policy {id} must hold exactly one policy, found {found}")]
    PolicyCount { id: String, found: usize },
    #[error("the directory of systems and resources could not be built: {message}")]
    Directory { message: String },
    #[error(
        "policy {id} is a template (it has ?principal or ?resource slots), which platform policies cannot be"
    )]
    Template { id: String },
    #[error(
        "policy {id} is too complex: it has {found} {what}, at most {limit} are allowed; split it into several policies"
    )]
    TooComplex {
        id: String,
        what: String,
        found: usize,
        limit: usize,
    },
}

impl PolicyError {
    /// The problems with their positions, for syntax and schema errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Syntax { problems, .. } | PolicyError::Schema { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// How a stored policy fares with today's Cedar, schema and limits. Policies are validated when
/// they are written, but a later upgrade of Cedar or of the schema may leave a stored one that no
/// longer validates; see [`PlatformPolicies::from_stored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStatus {
    /// It validates.
    Valid,
    /// It parses as one forbid policy but no longer type-checks against the schema. It is
    /// evaluated as written: where it matches it forbids, and where its evaluation fails the
    /// exchange is refused.
    Stale(PolicyError),
    /// It cannot be read as one forbid policy, so what it covers is unknown: while it is active,
    /// every exchange the platform policies decide is refused naming it.
    Unusable(PolicyError),
}

impl PolicyStatus {
    /// `valid`, `stale` or `unusable`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PolicyStatus::Valid => "valid",
            PolicyStatus::Stale(_) => "stale",
            PolicyStatus::Unusable(_) => "unusable",
        }
    }

    /// What is wrong with the policy, unless it is valid.
    pub fn error(&self) -> Option<&PolicyError> {
        match self {
            PolicyStatus::Valid => None,
            PolicyStatus::Stale(error) | PolicyStatus::Unusable(error) => Some(error),
        }
    }
}

/// How one platform policy fared in one decision, for [`crate::explain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStep {
    pub policy_id: String,
    /// Whether the policy's action constraint admits the request's action; policies that do not
    /// apply are not evaluated.
    pub applies: bool,
    /// Whether the forbid's conditions held, so that it forbids the exchange.
    pub matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the platform policies say about an exchange a grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicyOutcome {
    Permitted,
    Forbidden { policy_id: String },
    Failed { policy_id: String, message: String },
}

/// Cedar entities of the systems and resources the node knows, built once instead of per
/// exchange: building a store means hashing every entity and computing the transitive closure of
/// its parents, which costs as much as evaluating several policies.
#[derive(Clone, Default)]
struct Directory {
    consumers: HashMap<SystemRef, (ConsumerFacts, EntityUid)>,
    resources: HashMap<ResourceCode, (ResourceEntityFacts, EntityUid)>,
    entities: Entities,
}

/// The facts of a resource its Cedar entity is made of; items matter only through
/// `has_personal`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResourceEntityFacts {
    kind: ResourceKind,
    provider: Uscc,
    provider_region: RegionCode,
    has_personal: bool,
}

impl ResourceEntityFacts {
    fn of(resource: &ResourceFacts) -> ResourceEntityFacts {
        ResourceEntityFacts {
            kind: resource.kind,
            provider: resource.provider.clone(),
            provider_region: resource.provider_region,
            has_personal: resource.has_personal(),
        }
    }

    fn matches(&self, facts: &PolicyFacts<'_>) -> bool {
        self.kind == facts.resource.kind
            && self.provider == facts.resource.provider
            && self.provider_region == facts.resource.provider_region
            && self.has_personal == facts.has_personal
    }
}

/// Everything the platform policies can see of one exchange, and nothing else: the consumer's
/// and the resource's entity facts and the context. The Cedar request is built from these facts
/// alone, and the memo's key is computed from exactly these facts, so that the key cannot leave
/// out anything a policy could read.
pub(crate) struct PolicyFacts<'a> {
    consumer: &'a ConsumerFacts,
    resource: &'a ResourceFacts,
    has_personal: bool,
    /// `context.items`, `personal_items`, `plaintext_items` and `sensitive_items`, in the plan's
    /// order (the order of the resource's items), which is the same for the same inputs.
    items: Vec<&'a str>,
    personal_items: Vec<&'a str>,
    plaintext_items: Vec<&'a str>,
    sensitive_items: Vec<&'a str>,
    hour: u8,
    weekday: u8,
    bulk: bool,
    /// Cedar's Long is signed; no real request comes near the limit.
    expected_rows: i64,
}

impl<'a> PolicyFacts<'a> {
    pub(crate) fn of(request: &'a DecisionRequest, plan: &'a ItemPlan) -> PolicyFacts<'a> {
        let resource = &request.resource;
        let mut items = Vec::with_capacity(plan.deliver.len() + plan.mask.len());
        let mut plaintext_items = Vec::new();
        let mut sensitive_items = Vec::new();
        for (position, code) in plan.deliver.iter().enumerate() {
            items.push(code.as_str());
            let sensitivity = plan
                .deliver_sensitivity
                .get(position)
                .copied()
                .or_else(|| resource.item(code).map(|item| item.sensitivity));
            match sensitivity {
                Some(Sensitivity::Personal) => plaintext_items.push(code.as_str()),
                Some(Sensitivity::Sensitive) => sensitive_items.push(code.as_str()),
                _ => {}
            }
        }
        // Masked items are personal items not granted in plaintext.
        let mut personal_items = plaintext_items.clone();
        for item in &plan.mask {
            items.push(item.code.as_str());
            personal_items.push(item.code.as_str());
        }
        PolicyFacts {
            consumer: &request.consumer,
            resource,
            has_personal: resource.has_personal(),
            items,
            personal_items,
            plaintext_items,
            sensitive_items,
            hour: request.local_time.hour(),
            weekday: request.local_time.weekday(),
            bulk: request.bulk,
            expected_rows: i64::try_from(request.expected_rows).unwrap_or(i64::MAX),
        }
    }

    /// Writes the facts into `out` in a form from which they could be read back (every string
    /// and list is prefixed by its length), so that two different sets of facts never give the
    /// same bytes: all entity facts, and the context attributes in `context_use`. Which attributes
    /// are written depends only on the policies, so for one set of policies the bytes still tell
    /// any two sets of facts apart that the policies could tell apart.
    fn encode(&self, context_use: ContextUse, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, text: &str) {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        fn list(out: &mut Vec<u8>, codes: &[&str]) {
            out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
            for code in codes {
                text(out, code);
            }
        }
        let consumer = self.consumer;
        text(out, consumer.system.organization.as_str());
        text(out, consumer.system.system.as_str());
        text(out, consumer.region.as_str());
        text(out, consumer.level.as_str());
        let resource = self.resource;
        text(out, resource.code.as_str());
        text(out, resource.kind.as_str());
        text(out, resource.provider.as_str());
        text(out, resource.provider_region.as_str());
        out.push(u8::from(self.has_personal));
        let reads = |attribute| context_use.reads(attribute);
        if reads("items") {
            list(out, &self.items);
        }
        if reads("personal_items") {
            list(out, &self.personal_items);
        }
        if reads("plaintext_items") {
            list(out, &self.plaintext_items);
        }
        if reads("sensitive_items") {
            list(out, &self.sensitive_items);
        }
        if reads("hour") {
            out.push(self.hour);
        }
        if reads("weekday") {
            out.push(self.weekday);
        }
        if reads("bulk") {
            out.push(u8::from(self.bulk));
        }
        if reads("expected_rows") {
            out.extend_from_slice(&self.expected_rows.to_le_bytes());
        }
    }
}

fn restricted_string(text: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(text.to_owned())
}

/// The `Civitas::System` entity of a consumer, a member of its organization.
fn system_entity(
    consumer: &ConsumerFacts,
    city: RegionCode,
) -> std::result::Result<(EntityUid, Entity), String> {
    let names = &*NAMES;
    let organization = EntityUid::from_type_name_and_id(
        names.organization.clone(),
        EntityId::new(consumer.system.organization.as_str()),
    );
    let uid = EntityUid::from_type_name_and_id(
        names.system.clone(),
        EntityId::new(consumer.system.to_string()),
    );
    let entity = Entity::new_with_tags(
        uid.clone(),
        [
            (
                "organization".to_owned(),
                restricted_string(consumer.system.organization.as_str()),
            ),
            (
                "code".to_owned(),
                restricted_string(consumer.system.system.as_str()),
            ),
            (
                "region".to_owned(),
                restricted_string(consumer.region.as_str()),
            ),
            (
                "level".to_owned(),
                restricted_string(consumer.level.as_str()),
            ),
            (
                "in_city".to_owned(),
                RestrictedExpression::new_bool(consumer.region.is_within(city)),
            ),
        ],
        [organization],
        [],
    )
    .map_err(|error| error.to_string())?;
    Ok((uid, entity))
}

/// The `Civitas::Resource` entity of a resource, a member of its provider's organization.
fn resource_entity(
    resource: &ResourceFacts,
    has_personal: bool,
) -> std::result::Result<(EntityUid, Entity), String> {
    let names = &*NAMES;
    let provider = EntityUid::from_type_name_and_id(
        names.organization.clone(),
        EntityId::new(resource.provider.as_str()),
    );
    let uid = EntityUid::from_type_name_and_id(
        names.resource.clone(),
        EntityId::new(resource.code.as_str()),
    );
    let entity = Entity::new_with_tags(
        uid.clone(),
        [
            ("kind".to_owned(), restricted_string(resource.kind.as_str())),
            (
                "provider".to_owned(),
                restricted_string(resource.provider.as_str()),
            ),
            (
                "provider_region".to_owned(),
                restricted_string(resource.provider_region.as_str()),
            ),
            (
                "has_personal".to_owned(),
                RestrictedExpression::new_bool(has_personal),
            ),
        ],
        [provider],
        [],
    )
    .map_err(|error| error.to_string())?;
    Ok((uid, entity))
}

/// The platform policies of a node, ready to evaluate.
#[derive(Clone)]
pub struct PlatformPolicies {
    /// The city the node serves; consumers whose region lies within it are `in_city`.
    city: RegionCode,
    /// Policies by id, with the text as the admins wrote it.
    policies: BTreeMap<String, StoredPolicy>,
    /// The unusable policy with the smallest id and why, which every decision then names (see
    /// [`PolicyStatus::Unusable`]).
    first_unusable: Option<(String, String)>,
    /// The policies that can apply to reading, and to playing. Splitting by action is exact
    /// because the schema has no action groups, and it spares evaluating `play`-only rules on
    /// every read.
    read: ActionPolicies,
    play: ActionPolicies,
    authorizer: Authorizer,
    directory: Directory,
    /// Outcomes of earlier evaluations; see [`PlatformPolicies::set_memo_capacity`]. A clone
    /// starts with an empty memo of the same capacity.
    memo: Memo,
    /// Counts changes of the policies and of the directory. Memo entries are stamped with the
    /// generation they were computed in and count only in that generation, so a change
    /// invalidates the whole memo at once without touching it.
    generation: u64,
}

#[derive(Clone)]
struct StoredPolicy {
    text: String,
    /// The policy as Cedar reads it; `None` exactly when `status` is [`PolicyStatus::Unusable`].
    policy: Option<Policy>,
    status: PolicyStatus,
}

impl StoredPolicy {
    /// A policy that passed [`parse_platform_policy`].
    fn valid(text: &str, policy: Policy) -> StoredPolicy {
        StoredPolicy {
            text: text.to_owned(),
            policy: Some(policy),
            status: PolicyStatus::Valid,
        }
    }
}

/// The platform policies that apply to one action, compiled for evaluation.
#[derive(Clone)]
struct ActionPolicies {
    /// Their ids, in order.
    ids: Vec<String>,
    /// The policies plus the base permit, for Cedar's authorizer.
    policy_set: PolicySet,
    /// The number of the first policy whose condition holds, in id order, counted from 1, or 0
    /// when none holds: `if C1 then 1 else if C2 then 2 else ... else 0`. Each condition is
    /// rebuilt from the policy's structure the way Cedar forms it (principal, action and resource
    /// constraints, then `when` and `!unless` clauses, all joined by `&&`, in that order).
    ///
    /// Evaluating one expression answers for less than the authorizer, which rebuilds every
    /// policy's condition on every call. It is exact: conditions are evaluated in id order and
    /// `&&` stops only at a decisive value, so 0 means every condition was evaluated to `false`
    /// without an error (the authorizer finds no forbid satisfied and no error), and `n` means
    /// conditions 1 to n-1 were `false` without an error and condition n holds, so policy n is
    /// the smallest id that matches, the one the authorizer's answer names. Only when a condition
    /// fails (and the whole expression with it) are the conditions evaluated one by one, because
    /// a later match outranks a failure. `None` when the policies could not be rebuilt as
    /// expressions; Cedar's authorizer then answers every time. Tests check that both ways agree.
    first_forbid: Option<Expression>,
    /// Each policy's condition on its own, in id order, for when `first_forbid` fails; empty
    /// exactly when `first_forbid` is `None`.
    conditions: Vec<(String, Expression)>,
    /// The context attributes the policies read. The others are neither built for Cedar on the
    /// fast path nor part of the memo's key, since no evaluation of these policies can tell them
    /// apart.
    context_use: ContextUse,
}

impl ActionPolicies {
    fn compile(policies: &BTreeMap<String, StoredPolicy>, action: &EntityUid) -> ActionPolicies {
        let mut ids = Vec::new();
        let mut policy_set = PolicySet::new();
        policy_set
            .add(BASE_PERMIT.clone())
            .expect("an empty set has no conflicting id");
        let mut conditions: Option<Vec<(String, String)>> = Some(Vec::new());
        let mut context_use = ContextUse::NONE;
        for (id, stored) in policies {
            // Unusable policies have no action constraint to read; they are answered before
            // Cedar is asked (see `PlatformPolicies::evaluate`).
            let Some(policy) = &stored.policy else {
                continue;
            };
            let applies = match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(constrained) => constrained == *action,
                ActionConstraint::In(constrained) => constrained.contains(action),
            };
            if !applies {
                continue;
            }
            ids.push(id.clone());
            context_use = context_use.union(ContextUse::of(policy));
            policy_set
                .add(policy.clone())
                .expect("policy ids are unique and differ from the base permit's");
            conditions = conditions.and_then(|mut conditions| {
                conditions.push((id.clone(), condition_text(policy)?));
                Some(conditions)
            });
        }
        let compiled = conditions
            .filter(|conditions| !conditions.is_empty() && conditions.len() <= MAX_CHAINED_POLICIES)
            .and_then(|conditions| {
                let mut chain = String::new();
                for (number, (_, text)) in conditions.iter().enumerate() {
                    chain.push_str(&format!("if {text} then {} else ", number + 1));
                }
                chain.push('0');
                let first_forbid = Expression::from_str(&chain).ok()?;
                let each = conditions
                    .into_iter()
                    .map(|(id, text)| Some((id, Expression::from_str(&text).ok()?)))
                    .collect::<Option<Vec<_>>>()?;
                Some((first_forbid, each))
            });
        let (first_forbid, conditions) = match compiled {
            Some((first_forbid, each)) => (Some(first_forbid), each),
            None => (None, Vec::new()),
        };
        ActionPolicies {
            ids,
            policy_set,
            first_forbid,
            conditions,
            context_use,
        }
    }
}

/// Which attributes of the context some policies read, one bit per attribute of the schema's
/// `Exchange` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContextUse(u8);

impl ContextUse {
    const NONE: ContextUse = ContextUse(0);
    pub(crate) const ALL: ContextUse = ContextUse(u8::MAX);
    const ATTRIBUTES: [&'static str; 8] = [
        "items",
        "personal_items",
        "plaintext_items",
        "sensitive_items",
        "hour",
        "weekday",
        "bulk",
        "expected_rows",
    ];

    fn union(self, other: ContextUse) -> ContextUse {
        ContextUse(self.0 | other.0)
    }

    fn reads(self, attribute: &str) -> bool {
        // Only names of the schema are ever asked for; anything else counts as read.
        Self::ATTRIBUTES
            .iter()
            .position(|known| *known == attribute)
            .is_none_or(|bit| self.0 & (1 << bit) != 0)
    }

    fn with(self, attribute: &str) -> ContextUse {
        match Self::ATTRIBUTES
            .iter()
            .position(|known| *known == attribute)
        {
            Some(bit) => ContextUse(self.0 | (1 << bit)),
            // Validation rejects unknown attributes; should one get through, keep everything.
            None => ContextUse::ALL,
        }
    }

    /// The attributes `policy` reads. The only way to observe the context is the variable
    /// `context`, so when every use of it is `context.<attribute>` (or `context["<attribute>"]`)
    /// or `context has <attribute>`, the other attributes cannot change what the policy says.
    /// Any other use of `context` (compared as a whole, say), or a policy whose structure cannot
    /// be read, counts as reading everything.
    fn of(policy: &Policy) -> ContextUse {
        let Ok(structure) = policy.to_pst() else {
            return ContextUse::ALL;
        };
        let mut used = ContextUse::NONE;
        for clause in structure.body().clauses() {
            let (pst::Clause::When(expression) | pst::Clause::Unless(expression)) = clause;
            used = used.union(Self::of_expression(expression));
        }
        used
    }

    fn of_expression(expression: &pst::Expr) -> ContextUse {
        use pst::Expr;
        let is_context = |expression: &Expr| matches!(expression, Expr::Var(pst::Var::Context));
        let all = |expressions: &mut dyn Iterator<Item = &pst::Expr>| {
            expressions.fold(ContextUse::NONE, |used, expression| {
                used.union(Self::of_expression(expression))
            })
        };
        match expression {
            Expr::GetAttr { expr, attr } if is_context(expr) => ContextUse::NONE.with(attr),
            Expr::HasAttr { expr, attrs } if is_context(expr) => {
                ContextUse::NONE.with(attrs.first())
            }
            Expr::Var(pst::Var::Context) => ContextUse::ALL,
            Expr::Literal(_) | Expr::Var(_) | Expr::Slot(_) | Expr::Unknown { .. } => {
                ContextUse::NONE
            }
            Expr::UnaryOp { expr, .. }
            | Expr::GetAttr { expr, .. }
            | Expr::HasAttr { expr, .. }
            | Expr::Like { expr, .. } => Self::of_expression(expr),
            Expr::BinaryOp { left, right, .. } => {
                Self::of_expression(left).union(Self::of_expression(right))
            }
            Expr::Is { expr, in_expr, .. } => {
                all(&mut std::iter::once(&**expr).chain(in_expr.as_deref()))
            }
            Expr::IfThenElse {
                cond,
                then_expr,
                else_expr,
            } => all(&mut [cond, then_expr, else_expr].into_iter().map(|expr| &**expr)),
            Expr::Set(elements) => all(&mut elements.iter().map(|expr| &**expr)),
            Expr::Record(fields) => all(&mut fields.values().map(|expr| &**expr)),
            // A kind of expression this code does not know: assume it reads everything.
            _ => ContextUse::ALL,
        }
    }
}

/// A policy's condition as one Cedar expression, in the order Cedar's own evaluation uses.
fn condition_text(policy: &Policy) -> Option<String> {
    let structure = policy.to_pst().ok()?;
    let body = structure.body();
    let mut conjuncts = Vec::new();
    for (variable, constraint) in [
        ("principal", body.principal.to_string()),
        ("action", body.action.to_string()),
        ("resource", body.resource.to_string()),
    ] {
        if !constraint.is_empty() {
            conjuncts.push(format!("({variable} {constraint})"));
        }
    }
    for clause in body.clauses() {
        match clause {
            pst::Clause::When(expression) => conjuncts.push(format!("({expression})")),
            pst::Clause::Unless(expression) => conjuncts.push(format!("!({expression})")),
        }
    }
    if conjuncts.is_empty() {
        return Some("true".to_owned());
    }
    Some(format!("({})", conjuncts.join(" && ")))
}

impl fmt::Debug for PlatformPolicies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformPolicies")
            .field("city", &self.city)
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PlatformPolicies {
    /// No platform policies: grants alone decide.
    pub fn new(city: RegionCode) -> PlatformPolicies {
        let policies = BTreeMap::new();
        PlatformPolicies {
            city,
            read: ActionPolicies::compile(&policies, &NAMES.read),
            play: ActionPolicies::compile(&policies, &NAMES.play),
            policies,
            first_unusable: None,
            authorizer: Authorizer::new(),
            directory: Directory::default(),
            memo: Memo::with_capacity(DEFAULT_CAPACITY),
            generation: 0,
        }
    }

    /// Loads the given `(id, text)` policies, validating each.
    pub fn with_policies<I, S, T>(city: RegionCode, policies: I) -> Result<PlatformPolicies>
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
        T: AsRef<str>,
    {
        let loaded = policies
            .into_iter()
            .map(|(id, text)| {
                let (id, text) = (id.as_ref(), text.as_ref());
                let policy = parse_platform_policy(id, text)?;
                Ok((id.to_owned(), StoredPolicy::valid(text, policy)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PlatformPolicies::from_loaded(city, loaded))
    }

    /// Loads stored `(id, text)` policies as the gateway does, which never refuses one: each was
    /// validated when it was written, but an upgrade of Cedar or of the schema since may have
    /// left some that no longer validate, and leaving those out would let through what they
    /// forbid. A policy that still parses but no longer type-checks ([`PolicyStatus::Stale`]) is
    /// evaluated as written, so it forbids where it matches, and where it fails to evaluate the
    /// exchange is refused as for any failing policy. A policy that cannot be read at all
    /// ([`PolicyStatus::Unusable`]) cannot be scoped to any exchange, so every exchange these
    /// policies decide is refused naming it until it is fixed or deactivated (fail closed).
    /// [`PlatformPolicies::status`] tells how each fared.
    pub fn from_stored<I, S, T>(city: RegionCode, policies: I) -> PlatformPolicies
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
        T: AsRef<str>,
    {
        let loaded = policies.into_iter().map(|(id, text)| {
            let (id, text) = (id.as_ref(), text.as_ref());
            let (policy, status) = load_stored(id, text);
            let stored = StoredPolicy {
                text: text.to_owned(),
                policy,
                status,
            };
            (id.to_owned(), stored)
        });
        PlatformPolicies::from_loaded(city, loaded)
    }

    /// Platform policies of `city` made of policies already read.
    fn from_loaded(
        city: RegionCode,
        policies: impl IntoIterator<Item = (String, StoredPolicy)>,
    ) -> PlatformPolicies {
        let mut platform_policies = PlatformPolicies::new(city);
        platform_policies.policies.extend(policies);
        // Compiled once for all of them: compiling after each would take time quadratic in
        // their number.
        platform_policies.recompile();
        platform_policies
    }

    /// How a stored policy fares with today's Cedar, schema and limits, as
    /// [`PlatformPolicies::from_stored`] would load it.
    pub fn check_stored(id: &str, text: &str) -> PolicyStatus {
        load_stored(id, text).1
    }

    /// How the policy `id` fared when it was loaded; every policy added by
    /// [`PlatformPolicies::with_policies`] or [`PlatformPolicies::insert`] is valid.
    pub fn status(&self, id: &str) -> Option<&PolicyStatus> {
        self.policies.get(id).map(|stored| &stored.status)
    }

    /// The policies that do not validate, in id order, with how they fared.
    pub fn not_valid(&self) -> impl Iterator<Item = (&str, &PolicyStatus)> {
        self.policies
            .iter()
            .filter(|(_, stored)| stored.status != PolicyStatus::Valid)
            .map(|(id, stored)| (id.as_str(), &stored.status))
    }

    /// Checks a policy text as an admin submits it: the id is a code (lower-case letters, digits,
    /// `-`, `_`), the text holds exactly one `forbid` policy, it parses, and it type-checks in
    /// strict mode against the civitas schema. Syntax and type errors name their line and column.
    pub fn validate(id: &str, text: &str) -> Result<()> {
        parse_platform_policy(id, text).map(|_| ())
    }

    /// Adds a policy, or replaces the policy with the same id. Returns the replaced text.
    pub fn insert(&mut self, id: &str, text: &str) -> Result<Option<String>> {
        let policy = parse_platform_policy(id, text)?;
        let replaced = self
            .policies
            .insert(id.to_owned(), StoredPolicy::valid(text, policy));
        self.recompile();
        Ok(replaced.map(|stored| stored.text))
    }

    /// Removes a policy. Returns its text.
    pub fn remove(&mut self, id: &str) -> Option<String> {
        let removed = self.policies.remove(id)?;
        self.recompile();
        Some(removed.text)
    }

    /// Policies change rarely (an admin edits one), so everything derived is rebuilt whole.
    fn recompile(&mut self) {
        self.read = ActionPolicies::compile(&self.policies, &NAMES.read);
        self.play = ActionPolicies::compile(&self.policies, &NAMES.play);
        self.first_unusable = self
            .policies
            .iter()
            .find_map(|(id, stored)| match &stored.status {
                PolicyStatus::Unusable(error) => Some((id.clone(), unusable_message(error))),
                PolicyStatus::Valid | PolicyStatus::Stale(_) => None,
            });
        self.invalidate_memo();
    }

    /// Every remembered outcome was computed with the old policies or directory. Such a change
    /// is rare, so the memo starts over rather than working out which entries still hold.
    fn invalidate_memo(&mut self) {
        self.generation += 1;
    }

    /// Sets how many policy outcomes are remembered (rounded up to a power of two times 1,024,
    /// at most 67,108,864); 0 turns the memo off. The memo is emptied. The default holds 65,536
    /// outcomes, about 6 MB when full; memory is taken as the memo fills.
    ///
    /// The platform policies' outcome for an exchange is a pure function of the facts they can
    /// see (the consumer's and the resource's entity facts, the delivered item sets, hour,
    /// weekday, bulk and expected rows), the policies and the directory. [`crate::decide`]
    /// looks those facts up in the memo before evaluating Cedar and records the outcome after.
    /// A gateway sees the same consumer read the same resource with the same items all day, so
    /// most decisions skip Cedar. Context attributes no policy reads are not part of the key;
    /// when a policy reads `expected_rows`, a gateway that passes exact row counts that vary
    /// from call to call gets fewer hits than one passing the page size it asks for. Changing
    /// the policies or the directory invalidates every entry. Size the memo at about four times
    /// the distinct exchanges expected: a set-associative table evicts early when many keys
    /// meet in one set (see [`MemoStats`] for the hit rate).
    pub fn set_memo_capacity(&mut self, entries: usize) {
        self.memo = Memo::with_capacity(entries);
    }

    /// How often the memo answered, and how full it is, since it was created (or resized).
    pub fn memo_stats(&self) -> MemoStats {
        self.memo.stats(self.generation)
    }

    pub fn city(&self) -> RegionCode {
        self.city
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies as `(id, text)`, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.policies
            .iter()
            .map(|(id, stored)| (id.as_str(), stored.text.as_str()))
    }

    pub fn get(&self, id: &str) -> Option<&str> {
        self.policies.get(id).map(|stored| stored.text.as_str())
    }

    /// Whether every policy could be rebuilt as one expression for the fast path (see
    /// `ActionPolicies::first_forbid`).
    #[cfg(test)]
    fn has_fast_path(&self) -> bool {
        (self.read.ids.is_empty() || self.read.first_forbid.is_some())
            && (self.play.ids.is_empty() || self.play.first_forbid.is_some())
    }

    /// Registers the systems and resources the node knows, so that their Cedar entities are built
    /// once here rather than on every exchange. Optional and never a source of wrong decisions:
    /// an exchange uses the directory only when it knows both parties with exactly the facts the
    /// request carries, and builds the entities itself otherwise (a new system, a resource whose
    /// catalog entry changed since). Call it again with everything when the registry or catalog
    /// changes; later duplicates of a system or resource replace earlier ones.
    pub fn set_directory(
        &mut self,
        consumers: impl IntoIterator<Item = ConsumerFacts>,
        resources: impl IntoIterator<Item = ResourceFacts>,
    ) -> Result<()> {
        let mut directory = Directory::default();
        let mut entities = HashMap::new();
        let directory_error = |message: String| PolicyError::Directory { message };
        for consumer in consumers {
            let (uid, entity) = system_entity(&consumer, self.city).map_err(directory_error)?;
            entities.insert(uid.clone(), entity);
            directory
                .consumers
                .insert(consumer.system.clone(), (consumer, uid));
        }
        for resource in resources {
            let (uid, entity) =
                resource_entity(&resource, resource.has_personal()).map_err(directory_error)?;
            entities.insert(uid.clone(), entity);
            directory.resources.insert(
                resource.code.clone(),
                (ResourceEntityFacts::of(&resource), uid),
            );
        }
        directory.entities = Entities::from_entities(entities.into_values(), None)
            .map_err(|error| directory_error(error.to_string()))?;
        self.directory = directory;
        // A policy may read the attributes of an entity it names (`Civitas::System::"..."`),
        // which only the directory's store holds, so outcomes may depend on the directory.
        self.invalidate_memo();
        Ok(())
    }

    /// The Cedar schema text, for admins writing policies.
    pub fn schema_text() -> &'static str {
        SCHEMA_TEXT
    }

    /// Evaluates the platform policies for an exchange a grant allows with `plan`. Explaining
    /// (with `trace`) and `use_authorizer_only` (for tests comparing both ways) skip the memo
    /// and the fast path.
    pub(crate) fn evaluate(
        &self,
        request: &DecisionRequest,
        plan: &ItemPlan,
        trace: Option<&mut Vec<PolicyStep>>,
        use_authorizer_only: bool,
    ) -> PolicyOutcome {
        let applicable = match request.resource.kind {
            ResourceKind::Video => &self.play,
            ResourceKind::Dataset | ResourceKind::Interface | ResourceKind::File => &self.read,
        };
        if let Some((policy_id, message)) = &self.first_unusable {
            // An explanation still shows what the readable policies say.
            if let Some(trace) = trace {
                if applicable.ids.is_empty() {
                    self.trace_not_applicable(trace, applicable);
                } else {
                    let facts = PolicyFacts::of(request, plan);
                    self.evaluate_facts(&facts, applicable, Some(trace), false);
                }
            }
            return PolicyOutcome::Failed {
                policy_id: policy_id.clone(),
                message: message.clone(),
            };
        }
        // Without applicable policies the base permit alone would answer: skip Cedar entirely.
        if applicable.ids.is_empty() {
            if let Some(trace) = trace {
                self.trace_not_applicable(trace, applicable);
            }
            return PolicyOutcome::Permitted;
        }
        let facts = PolicyFacts::of(request, plan);
        if trace.is_some() || use_authorizer_only || !self.memo.is_enabled() {
            return self.evaluate_facts(&facts, applicable, trace, use_authorizer_only);
        }
        let mut encoded = Vec::with_capacity(256);
        facts.encode(applicable.context_use, &mut encoded);
        let key = self.memo.key(&encoded);
        if let Some(outcome) = self.memo.get(key, self.generation) {
            return outcome;
        }
        // Two threads missing on the same key both evaluate and both record the same outcome;
        // holding a lock across Cedar's evaluation would cost more than the rare duplicate work.
        let outcome = self.evaluate_facts(&facts, applicable, None, false);
        self.memo.insert(key, self.generation, outcome.clone());
        outcome
    }

    /// Evaluates the policies applicable to the exchange's action on its facts, with Cedar.
    fn evaluate_facts(
        &self,
        facts: &PolicyFacts<'_>,
        applicable: &ActionPolicies,
        trace: Option<&mut Vec<PolicyStep>>,
        use_authorizer_only: bool,
    ) -> PolicyOutcome {
        // The fast path evaluates only the policies' conditions, which read no more than
        // `context_use`; the authorizer gets the whole context, as the schema describes it.
        let fast = trace.is_none() && !use_authorizer_only && applicable.first_forbid.is_some();
        let context_use = if fast {
            applicable.context_use
        } else {
            ContextUse::ALL
        };
        let (cedar_request, entities) = match self.cedar_input(facts, context_use, None) {
            Ok(input) => input,
            Err(message) => {
                return PolicyOutcome::Failed {
                    policy_id: POLICY_INPUT_RULE_ID.to_owned(),
                    message,
                };
            }
        };
        if trace.is_none()
            && !use_authorizer_only
            && let Some(first_forbid) = &applicable.first_forbid
        {
            if let Ok(EvalResult::Long(number)) =
                eval_expression(&cedar_request, &entities, first_forbid)
            {
                let matched = usize::try_from(number)
                    .ok()
                    .and_then(|number| number.checked_sub(1))
                    .and_then(|index| applicable.conditions.get(index));
                match matched {
                    Some((policy_id, _)) => {
                        return PolicyOutcome::Forbidden {
                            policy_id: policy_id.clone(),
                        };
                    }
                    None if number == 0 => return PolicyOutcome::Permitted,
                    // Not a number the expression can give; let the loop below decide.
                    None => {}
                }
            }
            // Some policy failed. Evaluating the conditions one by one in id order finds what
            // the authorizer would report: the first that holds is the smallest matching id (a
            // match outranks any failure), else the first failure.
            let mut first_failure = None;
            for (policy_id, condition) in &applicable.conditions {
                match eval_expression(&cedar_request, &entities, condition) {
                    Ok(EvalResult::Bool(false)) => {}
                    Ok(EvalResult::Bool(true)) => {
                        return PolicyOutcome::Forbidden {
                            policy_id: policy_id.clone(),
                        };
                    }
                    Ok(other) => {
                        first_failure.get_or_insert_with(|| PolicyOutcome::Failed {
                            policy_id: policy_id.clone(),
                            message: format!("the condition is {other}, not a boolean"),
                        });
                    }
                    Err(error) => {
                        first_failure.get_or_insert_with(|| PolicyOutcome::Failed {
                            policy_id: policy_id.clone(),
                            message: error.to_string(),
                        });
                    }
                }
            }
            return first_failure.unwrap_or(PolicyOutcome::Permitted);
        }
        let response =
            self.authorizer
                .is_authorized(&cedar_request, &applicable.policy_set, &entities);
        let diagnostics = response.diagnostics();
        // Several policies may match; the smallest id is named so that decisions are repeatable.
        let forbidding = diagnostics
            .reason()
            .map(PolicyId::to_string)
            .filter(|id| id != BASE_PERMIT_ID)
            .min();
        let failing = diagnostics.errors().map(failing_policy).min();
        if let Some(trace) = trace {
            let matched: HashSet<String> = diagnostics.reason().map(PolicyId::to_string).collect();
            for id in &applicable.ids {
                let error = diagnostics
                    .errors()
                    .map(failing_policy)
                    .find(|(policy_id, _)| policy_id == id)
                    .map(|(_, message)| message);
                trace.push(PolicyStep {
                    policy_id: id.clone(),
                    applies: true,
                    matched: matched.contains(id),
                    error,
                });
            }
            self.trace_not_applicable(trace, applicable);
        }
        match (forbidding, failing) {
            (Some(policy_id), _) => PolicyOutcome::Forbidden { policy_id },
            (None, Some((policy_id, message))) => PolicyOutcome::Failed { policy_id, message },
            (None, None) => PolicyOutcome::Permitted,
        }
    }

    /// Records the policies whose action constraint excludes the request's action, and the
    /// unusable ones, which apply to every exchange and fail.
    fn trace_not_applicable(&self, trace: &mut Vec<PolicyStep>, applicable: &ActionPolicies) {
        for (id, stored) in &self.policies {
            if let PolicyStatus::Unusable(error) = &stored.status {
                trace.push(PolicyStep {
                    policy_id: id.clone(),
                    applies: true,
                    matched: false,
                    error: Some(unusable_message(error)),
                });
            } else if !applicable.ids.contains(id) {
                trace.push(PolicyStep {
                    policy_id: id.clone(),
                    applies: false,
                    matched: false,
                    error: None,
                });
            }
        }
        trace.sort_by(|a, b| a.policy_id.cmp(&b.policy_id));
    }

    /// Builds the Cedar request and entities of an exchange from its facts. The entities come
    /// from the directory (see [`PlatformPolicies::set_directory`]) when it knows both parties
    /// with the same facts, and are built for this request otherwise. With `schema`, freshly built
    /// inputs are checked against it (the tests do that; the hot path trusts the construction
    /// instead).
    pub(crate) fn cedar_input<'a>(
        &'a self,
        facts: &PolicyFacts<'_>,
        context_use: ContextUse,
        schema: Option<&Schema>,
    ) -> std::result::Result<(Request, Cow<'a, Entities>), String> {
        let consumer = facts.consumer;
        let resource = facts.resource;
        let known_consumer = self
            .directory
            .consumers
            .get(&consumer.system)
            .filter(|(known, _)| known == consumer);
        let known_resource = self
            .directory
            .resources
            .get(&resource.code)
            .filter(|(known, _)| known.matches(facts));
        let (system_uid, resource_uid, entities) = match (known_consumer, known_resource) {
            (Some((_, system_uid)), Some((_, resource_uid))) if schema.is_none() => (
                system_uid.clone(),
                resource_uid.clone(),
                Cow::Borrowed(&self.directory.entities),
            ),
            _ => {
                let (system_uid, system) = system_entity(consumer, self.city)?;
                let (resource_uid, resource_entity) =
                    resource_entity(resource, facts.has_personal)?;
                // Organizations have no attributes, so they are named only as parents: `in`
                // follows the parent links of the system and resource, and leaving the
                // organization entities out of the store saves building them.
                let entities = Entities::from_entities([system, resource_entity], schema)
                    .map_err(|error| error.to_string())?;
                (system_uid, resource_uid, Cow::Owned(entities))
            }
        };

        // Building the context's sets is the most expensive part of a Cedar request, so sets no
        // policy reads are left out.
        let string_set = |codes: &[&str]| {
            RestrictedExpression::new_set(codes.iter().map(|code| restricted_string(code)))
        };
        let attributes = [
            ("items", &|| string_set(&facts.items)),
            ("personal_items", &|| string_set(&facts.personal_items)),
            ("plaintext_items", &|| string_set(&facts.plaintext_items)),
            ("sensitive_items", &|| string_set(&facts.sensitive_items)),
            ("hour", &|| {
                RestrictedExpression::new_long(i64::from(facts.hour))
            }),
            ("weekday", &|| {
                RestrictedExpression::new_long(i64::from(facts.weekday))
            }),
            ("bulk", &|| RestrictedExpression::new_bool(facts.bulk)),
            ("expected_rows", &|| {
                RestrictedExpression::new_long(facts.expected_rows)
            }),
        ] as [(&str, &dyn Fn() -> RestrictedExpression); 8];
        let context = Context::from_pairs(
            attributes
                .into_iter()
                .filter(|(name, _)| context_use.reads(name))
                .map(|(name, value)| (name.to_owned(), value())),
        )
        .map_err(|error| error.to_string())?;
        let action = match resource.kind {
            ResourceKind::Video => NAMES.play.clone(),
            ResourceKind::Dataset | ResourceKind::Interface | ResourceKind::File => {
                NAMES.read.clone()
            }
        };
        let cedar_request = Request::new(system_uid, action, resource_uid, context, schema)
            .map_err(|error| error.to_string())?;
        Ok((cedar_request, entities))
    }
}

/// Why an unusable policy refuses every exchange, for the admin who must fix it.
fn unusable_message(error: &PolicyError) -> String {
    format!(
        "the stored policy cannot be read, so every exchange is refused until a platform admin \
         fixes or deactivates it: {error}"
    )
}

/// The policy that failed and what went wrong.
fn failing_policy(error: &AuthorizationError) -> (String, String) {
    match error {
        AuthorizationError::PolicyEvaluationError(error) => {
            (error.policy_id().to_string(), error.inner().to_string())
        }
    }
}

/// The schema, for tests that check the inputs built for Cedar against it.
#[cfg(test)]
pub(crate) fn schema() -> &'static Schema {
    VALIDATOR.schema()
}

fn parse_platform_policy(id: &str, text: &str) -> Result<Policy> {
    let policy = parse_forbid(id, text)?;
    check_schema(id, text, &policy)?;
    Ok(policy)
}

/// Reads a stored policy with today's Cedar, schema and limits: the policy when it parses as one
/// forbid policy (whether or not it still type-checks), and how it fares.
fn load_stored(id: &str, text: &str) -> (Option<Policy>, PolicyStatus) {
    match parse_forbid(id, text) {
        Err(error) => (None, PolicyStatus::Unusable(error)),
        Ok(policy) => match check_schema(id, text, &policy) {
            Ok(()) => (Some(policy), PolicyStatus::Valid),
            Err(error) => (Some(policy), PolicyStatus::Stale(error)),
        },
    }
}

/// Everything [`parse_platform_policy`] checks except the schema: the id, the limits of
/// complexity, the syntax, and that the text is exactly one forbid policy without slots. A policy
/// that fails any of these cannot be handed to Cedar as a platform policy at all.
fn parse_forbid(id: &str, text: &str) -> Result<Policy> {
    Code::parse(id).map_err(|error| PolicyError::InvalidId {
        id: id.to_owned(),
        message: error.message,
    })?;
    check_complexity(id, text)?;
    let parsed = PolicySet::from_str(text).map_err(|errors| PolicyError::Syntax {
        id: id.to_owned(),
        problems: errors.iter().map(|error| problem(text, error)).collect(),
    })?;
    if parsed.num_of_templates() > 0 {
        return Err(PolicyError::Template { id: id.to_owned() });
    }
    let policies: Vec<&Policy> = parsed.policies().collect();
    let [policy] = policies.as_slice() else {
        return Err(PolicyError::PolicyCount {
            id: id.to_owned(),
            found: policies.len(),
        });
    };
    if policy.effect() != Effect::Forbid {
        return Err(PolicyError::NotForbid { id: id.to_owned() });
    }
    Ok(policy.new_id(PolicyId::new(id)))
}

/// Type-checks a parsed policy in strict mode against the civitas schema.
fn check_schema(id: &str, text: &str, policy: &Policy) -> Result<()> {
    let mut single = PolicySet::new();
    single
        .add(policy.clone())
        .expect("an empty set has no conflicting id");
    // Level 1: a policy may read the attributes of the principal and the resource, but not of an
    // entity it names (`Civitas::System::"...".level`). Such an entity's attributes are known only
    // when the directory happens to hold it, so the outcome would depend on the directory.
    let validation = VALIDATOR.validate_with_level(&single, ValidationMode::Strict, 1);
    if !validation.validation_passed() {
        return Err(PolicyError::Schema {
            id: id.to_owned(),
            problems: validation
                .validation_errors()
                .map(|error| problem(text, error))
                .collect(),
        });
    }
    Ok(())
}

/// Refuses a policy that nests too deeply for Cedar to handle safely, before Cedar sees it (see
/// [`MAX_POLICY_OPERATORS`], [`MAX_POLICY_NESTING`] and [`MAX_POLICY_IFS`]). A rough scan of the
/// text: string literals and `//` comments are skipped, every other character that can open a
/// level of nesting counts once, and so do the keywords that make one.
fn check_complexity(id: &str, text: &str) -> Result<()> {
    let mut operators = 0;
    let mut ifs = 0;
    let (mut nesting, mut deepest) = (0usize, 0usize);
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '"' => {
                while let Some(inside) = characters.next() {
                    match inside {
                        '\\' => {
                            characters.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if characters.peek() == Some(&'/') => {
                for inside in characters.by_ref() {
                    if inside == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                operators += 1;
                nesting += 1;
                deepest = deepest.max(nesting);
            }
            ')' | ']' | '}' => nesting = nesting.saturating_sub(1),
            '.' | '!' | '-' | '+' | '*' | '<' | '>' | '=' | '&' | '|' => operators += 1,
            _ if character.is_alphabetic() || character == '_' => {
                let mut word = String::from(character);
                while let Some(&next) = characters.peek() {
                    if !(next.is_alphanumeric() || next == '_') {
                        break;
                    }
                    word.push(next);
                    characters.next();
                }
                match word.as_str() {
                    "if" => {
                        ifs += 1;
                        operators += 1;
                    }
                    "has" | "like" | "in" | "is" => operators += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let too_complex = |what: &str, found: usize, limit: usize| PolicyError::TooComplex {
        id: id.to_owned(),
        what: what.to_owned(),
        found,
        limit,
    };
    if deepest > MAX_POLICY_NESTING {
        return Err(too_complex(
            "levels of nested brackets",
            deepest,
            MAX_POLICY_NESTING,
        ));
    }
    if ifs > MAX_POLICY_IFS {
        return Err(too_complex("if expressions", ifs, MAX_POLICY_IFS));
    }
    if operators > MAX_POLICY_OPERATORS {
        return Err(too_complex(
            "operators, brackets and keywords",
            operators,
            MAX_POLICY_OPERATORS,
        ));
    }
    Ok(())
}

/// Turns a Cedar diagnostic into a problem with a line and column in `text`.
fn problem(text: &str, error: &(impl Diagnostic + fmt::Display)) -> Problem {
    let label = error.labels().and_then(|mut labels| labels.next());
    let position = label
        .as_ref()
        .map(|label| position_in(text, label.offset()));
    let mut message = error.to_string();
    if let Some(hint) = label.as_ref().and_then(|label| label.label())
        && !hint.is_empty()
        && !message.contains(hint)
    {
        message = format!("{message}; {hint}");
    }
    if let Some(help) = error.help() {
        message = format!("{message} ({help})");
    }
    Problem { position, message }
}

fn position_in(text: &str, byte_offset: usize) -> Position {
    let mut offset = byte_offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

#[cfg(test)]
mod tests;
