//! mutual TLS for the gateway: the node runs a small CA whose certificates name a system, the
//! gateway listener can require them, and a certificate's identity is read back from its
//! subject alternative name `urn:civitas:system:{org}/{system}`.

use std::{fs, io::Write, path::Path, sync::Arc};

use crate::files::{Existing, read_private_file, write_file_whole, write_new_private_file};
use anyhow::{Context, bail};
use civitas_core::{Code, Uscc, access::SystemRef};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

const CA_KEY_FILE: &str = "ca.key";
const CA_CERT_FILE: &str = "ca.crt";
/// The URI scheme of a system's identity in its certificate.
pub const SYSTEM_URI_PREFIX: &str = "urn:civitas:system:";

/// The node's certificate authority for system client certificates.
pub struct CertificateAuthority {
    key: KeyPair,
    cert_pem: String,
}

/// A certificate issued to a system.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// Lowercase hex serial number.
    pub serial: String,
    pub certificate_pem: String,
    /// The private key, when the CA made the key pair (no CSR was given); shown once.
    pub private_key_pem: Option<String>,
    pub not_after: jiff::Timestamp,
}

/// Checks that `cert_pem` is one certificate, for `key`.
fn check_certificate_of(cert_pem: &str, key: &KeyPair) -> anyhow::Result<()> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let certificate = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    if certificate.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        bail!("the certificate is for another key");
    }
    Ok(())
}

fn random_serial() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    // A positive DER integer without leading zeros, so that the serial reads back the same: clear
    // the top bit and set a low one.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    bytes.to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

impl CertificateAuthority {
    /// Loads the CA from `dir` (`ca.key`, `ca.crt`), or makes one valid for 20 years.
    ///
    /// The key is written first, then the certificate, each whole or not at all. A key found
    /// without its certificate (a crash between the two, or a certificate left empty by a crash
    /// of an older version that did not sync it) gets a new self-signed certificate for the same
    /// key and name, under which the certificates it issued still verify. A certificate that is
    /// not the key's is an error: which of the two is wrong is the operator's call.
    pub fn load_or_create(dir: &Path, node_code: &str) -> anyhow::Result<CertificateAuthority> {
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        if key_path.exists() {
            let key_pem = String::from_utf8(read_private_file(&key_path)?)
                .with_context(|| format!("{} is not PEM text", key_path.display()))?;
            let key = KeyPair::from_pem(&key_pem).context("the CA key")?;
            let stored = match fs::read_to_string(&cert_path) {
                Ok(pem) if !pem.trim().is_empty() => Ok(pem),
                Ok(_) => Err("empty"),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err("missing"),
                Err(error) => {
                    return Err(error).with_context(|| format!("reading {}", cert_path.display()));
                }
            };
            let cert_pem = match stored {
                Ok(pem) => pem,
                Err(why) => {
                    tracing::warn!(
                        path = %cert_path.display(),
                        why,
                        "the CA certificate is not there; making it again from the CA key"
                    );
                    Self::certify(&key, node_code, &cert_path)?
                }
            };
            check_certificate_of(&cert_pem, &key).with_context(|| {
                format!(
                    "{} is not the certificate of {}; remove it to have it made again from the key",
                    cert_path.display(),
                    key_path.display()
                )
            })?;
            return Ok(CertificateAuthority { key, cert_pem });
        }
        let key = KeyPair::generate().context("generating the CA key")?;
        write_new_private_file(&key_path, key.serialize_pem().as_bytes())?;
        let cert_pem = Self::certify(&key, node_code, &cert_path)?;
        Ok(CertificateAuthority { key, cert_pem })
    }

    /// Makes the CA's self-signed certificate for `key` and writes it to `cert_path`, replacing
    /// any there; its PEM.
    fn certify(key: &KeyPair, node_code: &str, cert_path: &Path) -> anyhow::Result<String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("civitas node {node_code} system CA"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(20 * 365);
        params.serial_number = Some(SerialNumber::from(random_serial()));
        let cert = params
            .self_signed(key)
            .context("signing the CA certificate")?;
        write_file_whole(cert_path, 0o644, Existing::Replace, |file| {
            Ok(file.write_all(cert.pem().as_bytes())?)
        })?;
        Ok(cert.pem())
    }

    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issuer(&self) -> anyhow::Result<Issuer<'_, &KeyPair>> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).context("the CA certificate")
    }

    /// Issues a client certificate naming `system`, for the key in `csr_pem` or, without a CSR,
    /// for a new key pair whose private key is returned once.
    pub fn issue_client(
        &self,
        system: &SystemRef,
        csr_pem: Option<&str>,
        valid_days: u32,
    ) -> anyhow::Result<IssuedCertificate> {
        let identity = format!("{SYSTEM_URI_PREFIX}{system}");
        let serial = random_serial();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.clone());
        params.subject_alt_names =
            vec![SanType::URI(identity.try_into().context("the system URI")?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = days_from_now(-1);
        let not_after = days_from_now(i64::from(valid_days));
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from(serial.clone()));
        let issuer = self.issuer()?;
        let (certificate, private_key_pem) = match csr_pem {
            Some(csr) => {
                let request = CertificateSigningRequestParams::from_pem(csr)
                    .map_err(|e| anyhow::anyhow!("the certificate signing request: {e}"))?;
                (params.signed_by(&request.public_key, &issuer)?, None)
            }
            None => {
                let key = KeyPair::generate()?;
                (params.signed_by(&key, &issuer)?, Some(key.serialize_pem()))
            }
        };
        Ok(IssuedCertificate {
            serial: hex(&serial),
            certificate_pem: certificate.pem(),
            private_key_pem,
            not_after: jiff::Timestamp::from_second(not_after.unix_timestamp())?,
        })
    }

    /// A server certificate for the gateway listener, for the given DNS names and addresses.
    pub fn issue_server(&self, names: Vec<String>) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(825);
        params.serial_number = Some(SerialNumber::from(random_serial()));
        let certificate = params.signed_by(&key, &self.issuer()?)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }
}

/// Whether the gateway listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A certificate from the node's CA is required; API keys are not accepted.
    Required,
    /// A certificate is used when offered; otherwise an API key.
    Optional,
}

/// The TLS configuration of the gateway listener: its server certificate, and client
/// certificates verified against the node's CA only.
pub fn server_config(
    ca: &CertificateAuthority,
    server_cert_pem: &str,
    server_key_pem: &str,
    client_auth: ClientAuth,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.certificate_pem().as_bytes()) {
        roots.add(cert?)?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = match client_auth {
        ClientAuth::Required => builder.build()?,
        ClientAuth::Optional => builder.allow_unauthenticated().build()?,
    };
    let chain = CertificateDer::pem_slice_iter(server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS settings of the gateway's calls to `https://` upstreams: it trusts the system's root
/// certificates and the node's own CA, whose server certificates providers may use
/// ([`CertificateAuthority::issue_server`]).
pub fn upstream_config(ca: &CertificateAuthority) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system root certificate could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system root certificates left out");
    }
    tracing::debug!(added, "system root certificates trusted for upstreams");
    for cert in CertificateDer::pem_slice_iter(ca.certificate_pem().as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Who a client certificate names, and until when it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub system: SystemRef,
    /// The serial in lower-case hexadecimal, as revocations name it.
    pub serial: String,
    /// The end of the certificate's validity. The TLS handshake checks it, but a connection
    /// may outlive it, so the gateway checks it again for every call.
    pub not_after: jiff::Timestamp,
}

/// The system a verified client certificate names, its serial and the end of its validity.
pub fn identity_of(certificate: &[u8]) -> anyhow::Result<ClientIdentity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .context("parsing the client certificate")?;
    let serial = hex(parsed.raw_serial());
    let not_after = jiff::Timestamp::from_second(parsed.validity().not_after.timestamp())
        .context("the client certificate's end of validity")?;
    for extension in parsed.extensions() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(names) =
            extension.parsed_extension()
        {
            for name in &names.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = name
                    && let Some(system) = uri.strip_prefix(SYSTEM_URI_PREFIX)
                {
                    let Some((organization, code)) = system.split_once('/') else {
                        bail!("malformed system URI {uri}");
                    };
                    return Ok(ClientIdentity {
                        system: SystemRef {
                            organization: Uscc::parse(organization)?,
                            system: Code::parse(code)?,
                        },
                        serial,
                        not_after,
                    });
                }
            }
        }
    }
    bail!("the certificate names no civitas system")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::files::tests::names_in;

    #[test]
    fn a_ca_key_without_its_certificate_gets_one_for_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(dir.path(), "cn-test").unwrap();
        assert_eq!(names_in(dir.path()), [CA_CERT_FILE, CA_KEY_FILE]);
        let system = SystemRef {
            organization: Uscc::from_parts('1', '1', "320100", "MB000001").unwrap(),
            system: Code::parse("portal").unwrap(),
        };
        let issued = first.issue_client(&system, None, 3).unwrap();
        let client = CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap();
        let verifies_under = |ca: &CertificateAuthority| {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.certificate_pem().as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .unwrap();
            verifier
                .verify_client_cert(&client, &[], rustls::pki_types::UnixTime::now())
                .is_ok()
        };
        assert!(verifies_under(&first));

        // A crash between the key and its certificate, or an older version's certificate that
        // never reached the disk: a certificate is made again for the same key and name.
        let cert_path = dir.path().join(CA_CERT_FILE);
        for damage in [None, Some(""), Some("\n")] {
            match damage {
                None => fs::remove_file(&cert_path).unwrap(),
                Some(text) => fs::write(&cert_path, text).unwrap(),
            }
            let again = CertificateAuthority::load_or_create(dir.path(), "cn-test").unwrap();
            assert_ne!(again.certificate_pem(), first.certificate_pem());
            assert_eq!(
                fs::read_to_string(&cert_path).unwrap(),
                again.certificate_pem()
            );
            assert!(
                verifies_under(&again),
                "what the CA issued still verifies under its new certificate"
            );
            assert_eq!(names_in(dir.path()), [CA_CERT_FILE, CA_KEY_FILE]);
            let kept = CertificateAuthority::load_or_create(dir.path(), "cn-test").unwrap();
            assert_eq!(kept.certificate_pem(), again.certificate_pem());
        }

        // A certificate that is not the key's, or not a certificate, is the operator's to sort
        // out: the node does not start on it, nor replace it.
        let elsewhere = tempfile::tempdir().unwrap();
        let other = CertificateAuthority::load_or_create(elsewhere.path(), "cn-test").unwrap();
        for wrong in [
            other.certificate_pem(),
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
        ] {
            fs::write(&cert_path, wrong).unwrap();
            let error = CertificateAuthority::load_or_create(dir.path(), "cn-test")
                .err()
                .expect("a certificate of another key is refused");
            assert!(format!("{error:#}").contains("remove it"), "{error:#}");
            assert_eq!(fs::read_to_string(&cert_path).unwrap(), wrong);
        }
    }

    #[test]
    fn the_ca_key_is_created_private_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(dir.path(), "cn-test").unwrap();
        let key_path = dir.path().join(CA_KEY_FILE);
        let mode = fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = CertificateAuthority::load_or_create(dir.path(), "cn-test").unwrap();
        assert_eq!(again.certificate_pem(), first.certificate_pem());

        // A client certificate names its system, serial and end of validity, which the
        // gateway checks on every call of a connection that outlives it.
        let system = SystemRef {
            organization: Uscc::from_parts('1', '1', "320100", "MB000001").unwrap(),
            system: Code::parse("portal").unwrap(),
        };
        let issued = first.issue_client(&system, None, 3).unwrap();
        let der = CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap();
        assert_eq!(
            identity_of(&der).unwrap(),
            ClientIdentity {
                system,
                serial: issued.serial,
                not_after: issued.not_after,
            }
        );

        // Restored from a backup or copied with a permissive umask: whoever can read the key can
        // issue a certificate naming any system, so the node refuses to use it.
        for loose in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(loose)).unwrap();
            let error = CertificateAuthority::load_or_create(dir.path(), "cn-test")
                .err()
                .expect("a key others may read is refused");
            assert!(error.to_string().contains("chmod 600"), "{error:#}");
        }
    }
}
