//! C2SP signed notes with Ed25519 signatures, and tlog checkpoints carried in them.
//!
//! A checkpoint body is `<origin>\n<tree size>\n<base64 root>\n`; the signed note appends a blank
//! line and one line `— <key name> <base64(key id || signature)>\n` per signature. The key id is
//! the first four bytes of `SHA-256(key name || "\n" || 0x01 || public key)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signature type byte of Ed25519 in signed notes.
const ED25519_TYPE: u8 = 0x01;
/// Separates the note text from the signature lines: the text's final newline, then a blank line.
const SIGNATURE_SEPARATOR: &str = "\n\n";
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// More than the spec's minimum of 16, few enough to bound the work spent on a hostile note.
const MAX_SIGNATURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("key name {0:?} is empty or contains a space or '+'")]
    InvalidKeyName(String),
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    #[error("signature by known key {key_name} does not verify")]
    BadSignature { key_name: String },
    #[error("note is not signed by any known key")]
    NoKnownSignature,
    #[error("checkpoint origin {actual:?} differs from the expected origin {expected:?}")]
    OriginMismatch { expected: String, actual: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn key_id(name: &str, public_key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_TYPE]);
    hasher.update(public_key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Signs notes with an Ed25519 key under a key name (the node code, for checkpoints).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    signing_key: SigningKey,
    key_id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key must never end up in logs.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    pub fn new(name: impl Into<String>, signing_key: SigningKey) -> Result<NoteSigner> {
        let name = name.into();
        if !is_valid_key_name(&name) {
            return Err(Error::InvalidKeyName(name));
        }
        let key_id = key_id(&name, &signing_key.verifying_key());
        Ok(NoteSigner {
            name,
            signing_key,
            key_id,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier of this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: self.signing_key.verifying_key(),
        }
    }

    /// `<name>+<8 hex digits of key id>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// Signs `text`, which must be non-empty, end in a newline and contain no control characters
    /// other than newlines, and returns the signed note.
    pub fn sign_note(&self, text: &str) -> Result<String> {
        check_note_characters(text)?;
        if !text.ends_with('\n') {
            return Err(Error::MalformedNote("text does not end with a newline"));
        }
        let signature = self.signing_key.sign(text.as_bytes());
        let mut payload = Vec::with_capacity(68);
        payload.extend_from_slice(&self.key_id);
        payload.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(payload)
        ))
    }

    /// Signs the checkpoint of a tree; the origin line is this signer's key name.
    pub fn sign_checkpoint(&self, tree_size: u64, root: &Hash) -> String {
        let body = checkpoint_body(&self.name, tree_size, root);
        self.sign_note(&body)
            .expect("a checkpoint body built from a valid key name is a valid note text")
    }
}

/// `<origin>\n<tree size>\n<base64 root>\n`.
pub fn checkpoint_body(origin: &str, tree_size: u64, root: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{}\n", BASE64.encode(root))
}

/// A public key that verifies signatures of one key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    public_key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<8 hex digits of key id>+<base64(0x01 || public key)>`; the key id must be
    /// the one computed from the name and key.
    pub fn parse(verifier_key: &str) -> Result<NoteVerifier> {
        let mut parts = verifier_key.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_base64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::MalformedVerifierKey(
                "expected <name>+<key id>+<base64 key>",
            ));
        };
        if !is_valid_key_name(name) {
            return Err(Error::MalformedVerifierKey("invalid key name"));
        }
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::MalformedVerifierKey(
                "key id is not 8 lowercase hex digits",
            ));
        }
        let id_value = u32::from_str_radix(id_hex, 16)
            .map_err(|_| Error::MalformedVerifierKey("key id is not hexadecimal"))?;
        let key_bytes = BASE64
            .decode(key_base64)
            .map_err(|_| Error::MalformedVerifierKey("key is not valid base64"))?;
        let [key_type, public_key @ ..] = key_bytes.as_slice() else {
            return Err(Error::MalformedVerifierKey("key is empty"));
        };
        if *key_type != ED25519_TYPE {
            return Err(Error::MalformedVerifierKey("key type is not ed25519"));
        }
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| Error::MalformedVerifierKey("ed25519 key is not 32 bytes"))?;
        let public_key = VerifyingKey::from_bytes(&public_key)
            .map_err(|_| Error::MalformedVerifierKey("ed25519 key is not a valid point"))?;
        let key_id = key_id(name, &public_key);
        if key_id != id_value.to_be_bytes() {
            return Err(Error::MalformedVerifierKey(
                "key id does not match the name and key",
            ));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id,
            public_key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_TYPE);
        key.extend_from_slice(self.public_key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            u32::from_be_bytes(self.key_id),
            BASE64.encode(key)
        )
    }
}

fn check_note_characters(text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::MalformedNote("text is empty"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(Error::MalformedNote(
            "contains a control character other than newline",
        ));
    }
    Ok(())
}

/// A note whose signature by at least one known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote<'a> {
    /// The signed text, including its final newline.
    pub text: &'a str,
    /// Names of the known keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// Parses a signed note and verifies its signatures: signatures by unknown keys are ignored (as
/// the spec requires, so that others can cosign), any failing signature by a known key rejects
/// the note, and at least one known key must have signed.
pub fn verify_note<'a>(note: &'a str, verifiers: &[NoteVerifier]) -> Result<VerifiedNote<'a>> {
    check_note_characters(note)?;
    if !note.ends_with('\n') {
        return Err(Error::MalformedNote("does not end with a newline"));
    }
    let Some(separator) = note.rfind(SIGNATURE_SEPARATOR) else {
        return Err(Error::MalformedNote(
            "no blank line before the signature lines",
        ));
    };
    let text = &note[..separator + 1];
    let signature_block = &note[separator + SIGNATURE_SEPARATOR.len()..];
    if signature_block.is_empty() {
        return Err(Error::MalformedNote("no signature lines"));
    }
    let mut signed_by = Vec::new();
    let lines = signature_block
        .strip_suffix('\n')
        .expect("the note ends with a newline")
        .split('\n');
    for (count, line) in lines.enumerate() {
        if count == MAX_SIGNATURES {
            return Err(Error::MalformedNote("too many signatures"));
        }
        let Some(line) = line.strip_prefix(SIGNATURE_PREFIX) else {
            return Err(Error::MalformedNote(
                "signature line does not start with an em dash and a space",
            ));
        };
        let Some((name, signature_base64)) = line.split_once(' ') else {
            return Err(Error::MalformedNote("signature line has no signature"));
        };
        if !is_valid_key_name(name) {
            return Err(Error::MalformedNote(
                "signature line has an invalid key name",
            ));
        }
        let signature = BASE64
            .decode(signature_base64)
            .map_err(|_| Error::MalformedNote("signature is not valid base64"))?;
        if signature.len() < 5 {
            return Err(Error::MalformedNote("signature is too short"));
        }
        let (id, signature) = signature.split_at(4);
        // A signature is by a known key only if both its name and its key id match.
        let Some(verifier) = verifiers
            .iter()
            .find(|verifier| verifier.name == name && verifier.key_id == id)
        else {
            continue;
        };
        let verified = Signature::from_slice(signature)
            .map(|signature| {
                verifier
                    .public_key
                    .verify_strict(text.as_bytes(), &signature)
                    .is_ok()
            })
            .unwrap_or(false);
        if !verified {
            return Err(Error::BadSignature {
                key_name: name.to_owned(),
            });
        }
        signed_by.push(name.to_owned());
    }
    if signed_by.is_empty() {
        return Err(Error::NoKnownSignature);
    }
    Ok(VerifiedNote { text, signed_by })
}

/// The three mandatory lines of a checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
}

/// Parses a checkpoint body (the text of the note); extension lines are allowed and ignored.
pub fn parse_checkpoint_body(text: &str) -> Result<CheckpointBody> {
    let Some(body) = text.strip_suffix('\n') else {
        return Err(Error::MalformedCheckpoint("does not end with a newline"));
    };
    let mut lines = body.split('\n');
    let (Some(origin), Some(size_text), Some(root_text)) =
        (lines.next(), lines.next(), lines.next())
    else {
        return Err(Error::MalformedCheckpoint("fewer than three lines"));
    };
    if origin.is_empty() {
        return Err(Error::MalformedCheckpoint("origin is empty"));
    }
    if lines.any(str::is_empty) {
        return Err(Error::MalformedCheckpoint("empty extension line"));
    }
    let canonical_size = !size_text.is_empty()
        && size_text.bytes().all(|b| b.is_ascii_digit())
        && (size_text == "0" || !size_text.starts_with('0'));
    if !canonical_size {
        return Err(Error::MalformedCheckpoint(
            "tree size is not a decimal number without leading zeros",
        ));
    }
    let tree_size = size_text
        .parse()
        .map_err(|_| Error::MalformedCheckpoint("tree size does not fit 64 bits"))?;
    let root = BASE64
        .decode(root_text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or(Error::MalformedCheckpoint(
            "root hash is not 32 bytes of base64",
        ))?;
    Ok(CheckpointBody {
        origin: origin.to_owned(),
        tree_size,
        root,
    })
}

/// Verifies a signed checkpoint with one verifier and parses it; the origin must be the verifier's
/// key name, which is how civitas names its logs.
pub fn verify_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<CheckpointBody> {
    let verified = verify_note(note, std::slice::from_ref(verifier))?;
    let body = parse_checkpoint_body(verified.text)?;
    if body.origin != verifier.name {
        return Err(Error::OriginMismatch {
            expected: verifier.name.clone(),
            actual: body.origin,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn verifier_key_round_trips() {
        let signer = signer("cn-js-nanjing", 7);
        let key = signer.verifier_key();
        let parsed = NoteVerifier::parse(&key).unwrap();
        assert_eq!(parsed, signer.verifier());
        assert_eq!(parsed.to_string(), key);
        let mut parts = key.split('+');
        assert_eq!(parts.next(), Some("cn-js-nanjing"));
        assert_eq!(parts.next().unwrap().len(), 8);
    }

    #[test]
    fn verifier_key_with_a_wrong_key_id_is_rejected() {
        let key = signer("cn-js-nanjing", 7).verifier_key();
        let mut parts: Vec<&str> = key.split('+').collect();
        parts[1] = "00000000";
        assert!(matches!(
            NoteVerifier::parse(&parts.join("+")),
            Err(Error::MalformedVerifierKey(_))
        ));
        assert!(NoteVerifier::parse("no-plus-signs").is_err());
        assert!(NoteVerifier::parse("name+0000000g+AA==").is_err());
    }

    #[test]
    fn key_names_with_spaces_or_plus_are_rejected() {
        let key = SigningKey::from_bytes(&[1; 32]);
        assert!(NoteSigner::new("a b", key.clone()).is_err());
        assert!(NoteSigner::new("a+b", key.clone()).is_err());
        assert!(NoteSigner::new("", key).is_err());
    }

    #[test]
    fn signed_checkpoint_verifies_and_parses() {
        let signer = signer("cn-js-nanjing", 3);
        let root = [9u8; 32];
        let note = signer.sign_checkpoint(42, &root);
        let body = verify_checkpoint(&note, &signer.verifier()).unwrap();
        assert_eq!(body.tree_size, 42);
        assert_eq!(body.root, root);
        assert_eq!(body.origin, "cn-js-nanjing");
        assert!(note.starts_with("cn-js-nanjing\n42\n"));
        assert!(note.contains("\n\n\u{2014} cn-js-nanjing "));
    }

    #[test]
    fn tampered_notes_are_rejected() {
        let signer = signer("cn-js-nanjing", 3);
        let verifier = signer.verifier();
        let note = signer.sign_checkpoint(42, &[9u8; 32]);
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            verify_note(&altered, std::slice::from_ref(&verifier)),
            Err(Error::BadSignature {
                key_name: "cn-js-nanjing".into()
            })
        );
        let other = self::signer("cn-js-nanjing", 4);
        assert_eq!(
            verify_note(&note, &[other.verifier()]),
            Err(Error::NoKnownSignature)
        );
        let without_signatures = note.split("\n\n").next().unwrap().to_owned() + "\n\n";
        assert!(matches!(
            verify_note(&without_signatures, std::slice::from_ref(&verifier)),
            Err(Error::MalformedNote(_))
        ));
        let hyphen = note.replace('\u{2014}', "-");
        assert!(matches!(
            verify_note(&hyphen, std::slice::from_ref(&verifier)),
            Err(Error::MalformedNote(_))
        ));
        let control = note.replacen("cn-js", "cn\tjs", 1);
        assert!(matches!(
            verify_note(&control, std::slice::from_ref(&verifier)),
            Err(Error::MalformedNote(_))
        ));
    }

    #[test]
    fn unknown_cosignatures_are_ignored() {
        let log = signer("cn-js-nanjing", 3);
        let witness = signer("witness.example", 5);
        let note = log.sign_checkpoint(1, &[1; 32]);
        let (text, log_signature) = note.split_once("\n\n").unwrap();
        let witness_note = witness.sign_note(&format!("{text}\n")).unwrap();
        let witness_line = witness_note.split_once("\n\n").unwrap().1;
        let cosigned = format!("{text}\n\n{log_signature}{witness_line}");
        let verified = verify_note(&cosigned, &[log.verifier()]).unwrap();
        assert_eq!(verified.signed_by, vec!["cn-js-nanjing".to_owned()]);
        let both = verify_note(&cosigned, &[log.verifier(), witness.verifier()]).unwrap();
        assert_eq!(both.signed_by.len(), 2);
    }

    #[test]
    fn checkpoint_bodies_are_parsed_strictly() {
        let root = BASE64.encode([0u8; 32]);
        assert!(parse_checkpoint_body(&format!("o\n0\n{root}\n")).is_ok());
        assert!(parse_checkpoint_body(&format!("o\n7\n{root}\next\n")).is_ok());
        assert!(parse_checkpoint_body(&format!("o\n07\n{root}\n")).is_err());
        assert!(parse_checkpoint_body(&format!("o\n-7\n{root}\n")).is_err());
        assert!(parse_checkpoint_body(&format!("\n7\n{root}\n")).is_err());
        assert!(parse_checkpoint_body(&format!("o\n7\n{root}")).is_err());
        assert!(parse_checkpoint_body("o\n7\nAAAA\n").is_err());
        assert!(parse_checkpoint_body(&format!("o\n7\n{root}\n\n")).is_err());
    }
}
