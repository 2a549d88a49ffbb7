//! Checks a ledger checkpoint with a verifier written here from the C2SP signed-note and
//! tlog-checkpoint specs, using only ed25519-dalek, sha2 and base64, never the crate's own
//! verification code.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use civitas_ledger::{Ledger, LedgerOptions, NoteSigner, merkle};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

struct IndependentCheckpoint {
    origin: String,
    tree_size: u64,
    root: [u8; 32],
}

/// Verifies `note` against the verifier key string and returns the checkpoint it carries.
fn independent_verify(note: &str, verifier_key: &str) -> Result<IndependentCheckpoint, String> {
    // Verifier key: <name>+<hex key id>+<base64(0x01 || 32-byte key)>.
    let parts: Vec<&str> = verifier_key.splitn(3, '+').collect();
    let [name, id_hex, key_base64] = parts[..] else {
        return Err("verifier key does not have three parts".into());
    };
    let key_bytes = BASE64.decode(key_base64).map_err(|e| e.to_string())?;
    if key_bytes.len() != 33 || key_bytes[0] != 0x01 {
        return Err("verifier key is not an ed25519 key".into());
    }
    let public_key_bytes: [u8; 32] = key_bytes[1..].try_into().unwrap();
    let public_key = VerifyingKey::from_bytes(&public_key_bytes).map_err(|e| e.to_string())?;
    let mut id_input = name.as_bytes().to_vec();
    id_input.push(b'\n');
    id_input.push(0x01);
    id_input.extend_from_slice(&public_key_bytes);
    let key_id: [u8; 4] = Sha256::digest(&id_input)[..4].try_into().unwrap();
    if format!("{:08x}", u32::from_be_bytes(key_id)) != id_hex {
        return Err("key id in the verifier key is wrong".into());
    }

    // The text ends at the last blank line; signature lines follow it.
    let separator = note.rfind("\n\n").ok_or("no blank line")?;
    let text = &note[..separator + 1];
    let signature_lines = &note[separator + 2..];
    let mut verified = false;
    for line in signature_lines.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or("signature line without em dash")?;
        let (line_name, signature_base64) = rest.split_once(' ').ok_or("no signature")?;
        let signature_bytes = BASE64.decode(signature_base64).map_err(|e| e.to_string())?;
        if line_name != name || signature_bytes[..4] != key_id {
            continue;
        }
        let signature = Signature::from_slice(&signature_bytes[4..]).map_err(|e| e.to_string())?;
        public_key
            .verify_strict(text.as_bytes(), &signature)
            .map_err(|e| e.to_string())?;
        verified = true;
    }
    if !verified {
        return Err("no signature by the key".into());
    }

    let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
    if lines.len() < 3 {
        return Err("checkpoint has fewer than three lines".into());
    }
    let root: [u8; 32] = BASE64
        .decode(lines[2])
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "root is not 32 bytes")?;
    Ok(IndependentCheckpoint {
        origin: lines[0].to_owned(),
        tree_size: lines[1].parse().map_err(|_| "bad tree size")?,
        root,
    })
}

#[tokio::test]
async fn ledger_checkpoints_verify_independently() {
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::new("cn-js-nanjing", SigningKey::from_bytes(&[42; 32])).unwrap();
    let ledger = Ledger::open(dir.path(), signer, LedgerOptions::default()).unwrap();
    let records: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("record {i}").into_bytes())
        .collect();
    ledger.append_batch(records.clone()).await.unwrap();
    let checkpoint = ledger.checkpoint_now().await.unwrap();

    let parsed = independent_verify(&checkpoint.note, ledger.verifier_key()).unwrap();
    assert_eq!(parsed.origin, "cn-js-nanjing");
    assert_eq!(parsed.tree_size, 300);
    let leaves: Vec<merkle::Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    assert_eq!(parsed.root, merkle::root(&leaves, 300).unwrap());
    assert!(checkpoint.note.starts_with("cn-js-nanjing\n300\n"));

    let tampered = checkpoint.note.replacen("\n300\n", "\n301\n", 1);
    assert!(independent_verify(&tampered, ledger.verifier_key()).is_err());
    let other_key = NoteSigner::new("cn-js-nanjing", SigningKey::from_bytes(&[43; 32]))
        .unwrap()
        .verifier_key();
    assert!(independent_verify(&checkpoint.note, &other_key).is_err());
}
