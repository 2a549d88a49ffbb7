//! Authentication: API keys in `Authorization: Bearer …`, and password sign-in that hands out a
//! short-lived key. Authorization itself is the table in `civitas_core::authz`; handlers ask it for
//! a `Permit` through [`Caller::permit`].

use axum::{extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use civitas_core::{
    Uscc,
    authz::{self, Action, Permit},
    registry::{API_KEY_PREFIX, KeyOwner, Principal, api_key_hash},
};
use civitas_store::{Authenticated, NewApiKey};
use jiff::{Timestamp, ToSpan};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{AppState, error::ApiError};

/// How long after its last recorded use a key's `last_used_at` is written again. Writing it on
/// every request would turn every read into a write.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

/// How long a key, once found valid in the store, is taken as valid without asking again.
/// Changes made through this server (a key revoked, a user or organization deactivated) forget
/// every remembered key at once; other servers on the same store, and a key's expiry, are
/// followed within this time.
const REMEMBERED_KEY_TTL: Duration = Duration::from_secs(1);
/// Remembered keys at most; past it, the ones out of date are dropped, or else all.
const REMEMBERED_KEYS: usize = 10_000;

/// Keys recently found valid, by hash, so that a client's stream of requests costs one store
/// lookup a second rather than one per request. Keys found invalid are not remembered.
#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    keys: Arc<Mutex<RememberedKeys>>,
}

#[derive(Debug, Default)]
struct RememberedKeys {
    /// How many times the keys were forgotten: a lookup that began before the last time may have
    /// read a key just revoked, and is not remembered.
    generation: u64,
    keys: HashMap<String, (Instant, Authenticated)>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<Authenticated> {
        let remembered = self.lock();
        let (found_at, authenticated) = remembered.keys.get(hash)?;
        (found_at.elapsed() < REMEMBERED_KEY_TTL).then(|| authenticated.clone())
    }

    /// What to pass to [`KeyCache::insert`] for a lookup in the store that starts now.
    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remembers a key found valid by a lookup that started at `generation`, unless a change
    /// committed since, which may have revoked it after the lookup read it.
    fn insert(&self, hash: String, authenticated: Authenticated, generation: u64) {
        let mut remembered = self.lock();
        if remembered.generation != generation {
            return;
        }
        let keys = &mut remembered.keys;
        if keys.len() >= REMEMBERED_KEYS {
            keys.retain(|_, (found_at, _)| found_at.elapsed() < REMEMBERED_KEY_TTL);
            if keys.len() >= REMEMBERED_KEYS {
                keys.clear();
            }
        }
        keys.insert(hash, (Instant::now(), authenticated));
    }

    /// Forgets every key: called after each change, any of which may revoke one.
    pub fn clear(&self) {
        let mut remembered = self.lock();
        remembered.generation += 1;
        remembered.keys.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RememberedKeys> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub key_id: String,
}

impl Caller {
    /// Asks the authorization table whether this caller may perform `action` on something that
    /// belongs to `target`; the permit is what the store's changes require.
    pub fn permit(&self, action: Action, target: Option<&Uscc>) -> Result<Permit, ApiError> {
        Ok(authz::authorize(&self.principal, action, target)?)
    }

    pub fn is_platform_admin(&self) -> bool {
        matches!(
            self.principal,
            Principal::User {
                role: civitas_core::registry::Role::PlatformAdmin,
                ..
            }
        )
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer_key(parts).ok_or(ApiError::Unauthenticated)?;
        let hash = api_key_hash(key);
        if let Some(authenticated) = state.keys.get(&hash) {
            return Ok(Caller {
                principal: authenticated.principal,
                key_id: authenticated.key_id,
            });
        }
        let now = Timestamp::now();
        let generation = state.keys.generation();
        let authenticated = state
            .store
            .authenticate(&hash, now)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        state.keys.insert(hash, authenticated.clone(), generation);
        // Only checked when the store is asked, at most once a second per key: that is often
        // enough for a mark of a minute's resolution.
        let stale = authenticated.last_used_at.is_none_or(|last_used| {
            now.duration_since(last_used).as_secs() >= LAST_USED_RESOLUTION_SECONDS
        });
        if stale {
            let store = state.store.clone();
            let key_id = authenticated.key_id.clone();
            tokio::spawn(async move {
                if let Err(error) = store.touch_api_key(&key_id, now).await {
                    tracing::warn!(%error, key_id, "could not record key use");
                }
            });
        }
        Ok(Caller {
            principal: authenticated.principal,
            key_id: authenticated.key_id,
        })
    }
}

/// A caller who may be anonymous: no `Authorization` header means anonymous, a bad key is still
/// a 401. Used where open data is readable without a key.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl MaybeCaller {
    /// Anonymous callers may read the open part of the catalog; authenticated ones need the
    /// `read_catalog` permission.
    pub fn permit_read(&self) -> Result<(), ApiError> {
        match &self.0 {
            Some(caller) => caller.permit(Action::ReadCatalog, None).map(|_| ()),
            None => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            Caller::from_request_parts(parts, state)
                .await
                .map(|caller| MaybeCaller(Some(caller)))
        } else {
            Ok(MaybeCaller(None))
        }
    }
}

/// The key from `Authorization: Bearer <key>`.
pub fn bearer_key(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|key| !key.is_empty())
}

/// A freshly made key: the secret to show once, and what the store keeps.
pub struct IssuedKey {
    pub secret: String,
    pub record: NewApiKey,
}

/// A new random API key: `cvk_` followed by 32 random bytes in base64url.
pub fn new_secret() -> String {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the operating system provides randomness");
    format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random))
}

/// What the store keeps of the key `secret`: its hash and first characters, never the key.
pub fn key_record(
    secret: &str,
    owner: KeyOwner,
    label: String,
    expires_at: Option<Timestamp>,
) -> NewApiKey {
    NewApiKey {
        id: uuid::Uuid::now_v7().to_string(),
        hash: api_key_hash(secret),
        prefix: secret.chars().take(API_KEY_PREFIX.len() + 8).collect(),
        owner,
        label,
        expires_at,
    }
}

/// Makes a new random API key for `owner`.
pub fn issue_key(owner: KeyOwner, label: String, expires_at: Option<Timestamp>) -> IssuedKey {
    let secret = new_secret();
    let record = key_record(&secret, owner, label, expires_at);
    IssuedKey { secret, record }
}

/// How long a key obtained by signing in with a password lasts.
pub fn session_expiry(now: Timestamp) -> Timestamp {
    now + 12.hours()
}

/// Hashes a password with argon2id; slow on purpose, so it runs off the async threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password_now(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::Internal)
}

/// Hashes a password with argon2id and the crate's default parameters, on the calling thread.
fn hash_password_now(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).expect("the operating system provides randomness");
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

/// A hash of a random password nobody knows, made once with the algorithm and parameters of every
/// stored hash. A sign-in whose name has no stored hash (no such user, a deactivated one, one
/// without a password) checks its password against this one instead, so that it costs what a
/// wrong password costs and its time does not tell whether the name exists.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        hash_password_now(&new_secret()).expect("argon2 hashes with its default parameters")
    });
    &DUMMY
}

/// Checks a sign-in's password against the user's stored argon2 hash, off the async threads.
/// Without a stored hash it checks against [`dummy_password_hash`] all the same, and answers
/// false.
pub async fn verify_password(
    password: String,
    stored_hash: Option<String>,
) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        verify_password_now(&password, stored_hash.as_deref(), dummy_password_hash())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::Internal)
}

/// [`verify_password`] on the calling thread, with `dummy` to check against when there is no
/// stored hash.
fn verify_password_now(
    password: &str,
    stored_hash: Option<&str>,
    dummy: &str,
) -> anyhow::Result<bool> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let checked_against = stored_hash.unwrap_or(dummy);
    let parsed =
        PasswordHash::new(checked_against).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let matches = argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(matches && stored_hash.is_some())
}

/// The minimum length of a password; passphrases are encouraged.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;
    use civitas_core::registry::{Role, UserName};

    fn authenticated() -> Authenticated {
        Authenticated {
            key_id: "k1".into(),
            principal: Principal::User {
                name: UserName::parse("dev").unwrap(),
                role: Role::Developer,
                organization: None,
            },
            last_used_at: None,
        }
    }

    /// The parameters a hash was made with: its algorithm, version, and argon2's memory, time and
    /// parallelism costs.
    fn cost_of(hash: &str) -> (String, Option<u32>, String) {
        let parsed = argon2::password_hash::PasswordHash::new(hash).unwrap();
        let params = parsed
            .params
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        (parsed.algorithm.to_string(), parsed.version, params)
    }

    #[test]
    fn an_unknown_name_costs_a_verification_against_a_hash_like_the_stored_ones() {
        let stored = hash_password_now("correct horse battery").unwrap();
        let dummy = dummy_password_hash();
        assert_eq!(cost_of(dummy), cost_of(&stored));
        assert_eq!(cost_of(dummy).0, "argon2id");
        assert!(
            std::ptr::eq(dummy, dummy_password_hash()),
            "made once, not on every sign-in"
        );

        let verify = |password, stored| verify_password_now(password, stored, dummy);
        assert!(verify("correct horse battery", Some(&stored)).unwrap());
        assert!(!verify("wrong horse battery", Some(&stored)).unwrap());
        assert!(!verify("correct horse battery", None).unwrap());

        // Without a stored hash the password is verified against the dummy: one that cannot be
        // read shows that it is, where an early answer would not have looked at it.
        assert!(verify_password_now("x", None, "not a hash").is_err());
        // And never matches, not even the dummy's own password.
        let known = hash_password_now("the dummy's password").unwrap();
        assert!(verify_password_now("the dummy's password", Some(&known), &known).unwrap());
        assert!(!verify_password_now("the dummy's password", None, &known).unwrap());
    }

    #[test]
    fn a_key_looked_up_before_a_change_is_not_remembered_after_it() {
        let cache = KeyCache::default();
        let generation = cache.generation();
        cache.insert("h1".into(), authenticated(), generation);
        assert!(cache.get("h1").is_some());

        // A request reads the key from the store; meanwhile the key is revoked, and the change
        // forgets every remembered key; then the request's lookup answers, with the key valid.
        let generation = cache.generation();
        cache.clear();
        cache.insert("h2".into(), authenticated(), generation);
        assert!(
            cache.get("h2").is_none(),
            "a key read before its revocation must not be taken as valid after it"
        );
        cache.insert("h2".into(), authenticated(), cache.generation());
        assert!(cache.get("h2").is_some());
    }
}
