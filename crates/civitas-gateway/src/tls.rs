//! mutual TLS for the gateway: the node runs a small CA whose certificates name a system, the
//! gateway listener can require them, and a certificate's identity is read back from its
//! subject alternative name `urn:civitas:system:{org}/{system}`. The same CA issues the gateway
//! its own client certificate, named `urn:civitas:node:{node}:gateway`, which the gateway
//! presents to `https://` upstreams that ask for one, so that providers can tell its calls from
//! anyone else's.

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
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::WebPkiClientVerifier,
};

const CA_KEY_FILE: &str = "ca.key";
const CA_CERT_FILE: &str = "ca.crt";
/// The gateway's client certificate and its key, beside the CA's files in the data dir.
pub const GATEWAY_CERT_FILE: &str = "gateway-client.crt";
pub const GATEWAY_KEY_FILE: &str = "gateway-client.key";
/// The URI scheme of a system's identity in its certificate.
pub const SYSTEM_URI_PREFIX: &str = "urn:civitas:system:";
/// How long the CA's server certificates and the gateway's client certificate are valid: 825
/// days, the most that browsers have accepted of a server certificate.
const LEAF_VALIDITY_DAYS: i64 = 825;
/// The gateway's client certificate is issued again at start once it ends within this many
/// days, so that a node restarted now and then never presents an expired one.
const GATEWAY_RENEWAL_DAYS: i64 = 90;

/// The identity of node `node_code`'s gateway in its client certificate:
/// `urn:civitas:node:{node_code}:gateway`. It never begins with [`SYSTEM_URI_PREFIX`], so that
/// [`identity_of`] cannot take the gateway for a system.
pub fn gateway_uri(node_code: &str) -> String {
    format!("urn:civitas:node:{node_code}:gateway")
}

/// The node's certificate authority: it issues the systems' client certificates, server
/// certificates (the gateway listener's, and providers' upstreams' if they like) and the
/// gateway's own client certificate.
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

/// The parameters of a client certificate naming `identity` (a URI) as its common name and its
/// one subject alternative name, valid from yesterday for `valid_days`.
fn client_params(
    identity: String,
    valid_days: i64,
    serial: Vec<u8>,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, identity.clone());
    params.subject_alt_names = vec![SanType::URI(
        identity
            .try_into()
            .context("the identity is not a valid URI")?,
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = days_from_now(-1);
    params.not_after = days_from_now(valid_days);
    params.serial_number = Some(SerialNumber::from(serial));
    Ok(params)
}

/// The gateway's client certificate and its key, which it presents to `https://` upstreams that
/// ask for a client certificate ([`upstream_config`]).
pub struct GatewayCertificate {
    pub certificate_pem: String,
    key_pem: String,
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
        let serial = random_serial();
        let params = client_params(
            format!("{SYSTEM_URI_PREFIX}{system}"),
            i64::from(valid_days),
            serial.clone(),
        )?;
        let not_after = params.not_after;
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
        params.not_after = days_from_now(LEAF_VALIDITY_DAYS);
        params.serial_number = Some(SerialNumber::from(random_serial()));
        let certificate = params.signed_by(&key, &self.issuer()?)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// Adds the CA's certificate to `roots`.
    fn trust_in(&self, roots: &mut RootCertStore) -> anyhow::Result<()> {
        for cert in CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        Ok(())
    }

    /// Loads the gateway's client certificate for node `node_code` from `dir`
    /// ([`GATEWAY_CERT_FILE`], [`GATEWAY_KEY_FILE`]), or issues it, with a new key, for
    /// [`LEAF_VALIDITY_DAYS`] when the stored one cannot serve: missing or unreadable, not the
    /// key's, ending within [`GATEWAY_RENEWAL_DAYS`], naming another identity than
    /// [`gateway_uri`] (the node's code changed), or not verifying under this CA (the CA was
    /// replaced). Nobody else holds the certificate, so issuing it again costs nothing, while
    /// upstreams would refuse a stale one.
    ///
    /// A key file that others may read is refused, as the CA's is: whoever reads it can call
    /// providers as this node's gateway. The key is written first, then the certificate, each
    /// whole, so that a crash between the two leaves a certificate of another key, which the
    /// next start issues again.
    pub fn load_or_issue_gateway_certificate(
        &self,
        dir: &Path,
        node_code: &str,
    ) -> anyhow::Result<GatewayCertificate> {
        let key_path = dir.join(GATEWAY_KEY_FILE);
        let cert_path = dir.join(GATEWAY_CERT_FILE);
        let identity = gateway_uri(node_code);
        let why = 'stored: {
            if !key_path.exists() {
                break 'stored "missing";
            }
            let key_pem = read_private_file(&key_path)?;
            let certificate_pem = match fs::read(&cert_path) {
                Ok(pem) => pem,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    break 'stored "missing";
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("reading {}", cert_path.display()));
                }
            };
            let (Ok(key_pem), Ok(certificate_pem)) = (
                String::from_utf8(key_pem),
                String::from_utf8(certificate_pem),
            ) else {
                break 'stored "unreadable";
            };
            match self.gateway_certificate_problem(&certificate_pem, &key_pem, &identity)? {
                Some(why) => break 'stored why,
                None => {
                    return Ok(GatewayCertificate {
                        certificate_pem,
                        key_pem,
                    });
                }
            }
        };
        let key = KeyPair::generate().context("generating the gateway's client key")?;
        let params = client_params(identity.clone(), LEAF_VALIDITY_DAYS, random_serial())?;
        let not_after = params.not_after;
        let certificate = params
            .signed_by(&key, &self.issuer()?)
            .context("signing the gateway's client certificate")?;
        let gateway = GatewayCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        };
        write_file_whole(&key_path, 0o600, Existing::Replace, |file| {
            Ok(file.write_all(gateway.key_pem.as_bytes())?)
        })?;
        write_file_whole(&cert_path, 0o644, Existing::Replace, |file| {
            Ok(file.write_all(gateway.certificate_pem.as_bytes())?)
        })?;
        tracing::info!(
            why,
            %identity,
            not_after = %jiff::Timestamp::from_second(not_after.unix_timestamp())?,
            path = %cert_path.display(),
            "issued the gateway's client certificate, which it presents to provider upstreams"
        );
        Ok(gateway)
    }

    /// Why a stored gateway certificate cannot serve as the gateway's client certificate
    /// named `identity`, if it cannot.
    fn gateway_certificate_problem(
        &self,
        certificate_pem: &str,
        key_pem: &str,
        identity: &str,
    ) -> anyhow::Result<Option<&'static str>> {
        let Ok(key) = KeyPair::from_pem(key_pem) else {
            return Ok(Some("unreadable"));
        };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()) else {
            return Ok(Some("unreadable"));
        };
        let Ok(certificate) = pem.parse_x509() else {
            return Ok(Some("unreadable"));
        };
        if check_certificate_of(certificate_pem, &key).is_err() {
            return Ok(Some("of another key"));
        }
        let renew_from = days_from_now(GATEWAY_RENEWAL_DAYS).unix_timestamp();
        if certificate.validity().not_after.timestamp() < renew_from {
            return Ok(Some("ending soon"));
        }
        let names_identity = certificate
            .subject_alternative_name()
            .ok()
            .flatten()
            .is_some_and(|names| {
                names.value.general_names.iter().any(|name| {
                    matches!(name, x509_parser::extensions::GeneralName::URI(uri) if *uri == identity)
                })
            });
        if !names_identity {
            return Ok(Some("naming another identity"));
        }
        if !self.verifies_client(&CertificateDer::from(pem.contents.as_slice()))? {
            return Ok(Some("not issued by this CA"));
        }
        Ok(None)
    }

    /// Whether `certificate` verifies as an upstream or the gateway listener verifies a client
    /// certificate: signed by this CA, within its validity, and for client authentication.
    fn verifies_client(&self, certificate: &CertificateDer) -> anyhow::Result<bool> {
        let mut roots = RootCertStore::empty();
        self.trust_in(&mut roots)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()?;
        Ok(verifier
            .verify_client_cert(certificate, &[], UnixTime::now())
            .is_ok())
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
    ca.trust_in(&mut roots)?;
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
/// ([`CertificateAuthority::issue_server`]), and presents `gateway` to an upstream that asks for
/// a client certificate (one that does not ask sees no difference).
pub fn upstream_config(
    ca: &CertificateAuthority,
    gateway: &GatewayCertificate,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
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
    ca.trust_in(&mut roots)?;
    let chain = CertificateDer::pem_slice_iter(gateway.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(gateway.key_pem.as_bytes())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .context("the gateway's client certificate")?;
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

    /// A new CA of node `cn-test` in `dir`, and the gateway certificate it issued there.
    fn ca_and_gateway_in(dir: &Path) -> (CertificateAuthority, GatewayCertificate) {
        let ca = CertificateAuthority::load_or_create(dir, "cn-test").unwrap();
        let gateway = ca
            .load_or_issue_gateway_certificate(dir, "cn-test")
            .unwrap();
        (ca, gateway)
    }

    /// Stores `certificate_pem` and `key_pem` (owner-only) as the gateway's files in `dir`.
    fn store_gateway_files(dir: &Path, certificate_pem: &str, key_pem: &str) {
        let key_path = dir.join(GATEWAY_KEY_FILE);
        fs::write(&key_path, key_pem).unwrap();
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(dir.join(GATEWAY_CERT_FILE), certificate_pem).unwrap();
    }

    /// A client certificate from `ca` naming `identity`, valid for `valid_days`, and its key.
    fn gateway_files_from(
        ca: &CertificateAuthority,
        identity: &str,
        valid_days: i64,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = client_params(identity.to_owned(), valid_days, random_serial()).unwrap();
        let certificate = params.signed_by(&key, &ca.issuer().unwrap()).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    /// Loads the gateway certificate of `node_code` from `dir`, which holds `stored` as its files
    /// (or none), and checks whether it was issued anew as `reissued` says. Either way the
    /// certificate in use is the one in the files, and one that serves.
    fn check_gateway_load(
        ca: &CertificateAuthority,
        dir: &Path,
        node_code: &str,
        stored: Option<(&str, &str)>,
        reissued: bool,
    ) {
        let _ = fs::remove_file(dir.join(GATEWAY_CERT_FILE));
        let _ = fs::remove_file(dir.join(GATEWAY_KEY_FILE));
        if let Some((certificate_pem, key_pem)) = stored {
            store_gateway_files(dir, certificate_pem, key_pem);
        }
        let loaded = ca
            .load_or_issue_gateway_certificate(dir, node_code)
            .unwrap();
        let kept = stored.is_some_and(|(certificate_pem, key_pem)| {
            loaded.certificate_pem == certificate_pem && loaded.key_pem == key_pem
        });
        assert_eq!(!kept, reissued, "{stored:?}");
        assert_eq!(
            fs::read_to_string(dir.join(GATEWAY_CERT_FILE)).unwrap(),
            loaded.certificate_pem
        );
        assert_eq!(
            read_private_file(&dir.join(GATEWAY_KEY_FILE)).unwrap(),
            loaded.key_pem.as_bytes()
        );
        let identity = gateway_uri(node_code);
        assert_eq!(
            ca.gateway_certificate_problem(&loaded.certificate_pem, &loaded.key_pem, &identity)
                .unwrap(),
            None
        );
        upstream_config(ca, &loaded).expect("the certificate and key make a client identity");
    }

    #[test]
    fn the_gateway_certificate_is_kept_while_it_serves_and_issued_again_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, first) = ca_and_gateway_in(dir.path());
        let files = [
            CA_CERT_FILE,
            CA_KEY_FILE,
            GATEWAY_CERT_FILE,
            GATEWAY_KEY_FILE,
        ];
        assert_eq!(names_in(dir.path()), files);
        let key_mode = fs::metadata(dir.path().join(GATEWAY_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let (_, pem) = x509_parser::pem::parse_x509_pem(first.certificate_pem.as_bytes()).unwrap();
        let certificate = pem.parse_x509().unwrap();
        let days = (certificate.validity().not_after.timestamp()
            - certificate.validity().not_before.timestamp())
            / (24 * 60 * 60);
        assert_eq!(days, LEAF_VALIDITY_DAYS + 1, "from yesterday for 825 days");
        let first = (first.certificate_pem.as_str(), first.key_pem.as_str());

        let elsewhere = tempfile::tempdir().unwrap();
        let other_ca = CertificateAuthority::load_or_create(elsewhere.path(), "cn-test").unwrap();
        let from_other_ca = gateway_files_from(&other_ca, &gateway_uri("cn-test"), 400);
        let ending = gateway_files_from(&ca, &gateway_uri("cn-test"), 30);
        let not_yet_ending = gateway_files_from(&ca, &gateway_uri("cn-test"), 100);
        let of_a_system = gateway_files_from(&ca, "urn:civitas:system:a/b", 400);
        let (first_certificate, first_key) = first;
        let (_, another_key) = gateway_files_from(&ca, &gateway_uri("cn-test"), 400);
        for (stored, reissued) in [
            (Some(first), false),
            (None, true),
            (Some(("", first_key)), true),
            (Some(("not a certificate", first_key)), true),
            (Some((first_certificate, "not a key")), true),
            (Some((first_certificate, another_key.as_str())), true),
            (
                Some((from_other_ca.0.as_str(), from_other_ca.1.as_str())),
                true,
            ),
            (Some((ending.0.as_str(), ending.1.as_str())), true),
            (
                Some((not_yet_ending.0.as_str(), not_yet_ending.1.as_str())),
                false,
            ),
            (Some((of_a_system.0.as_str(), of_a_system.1.as_str())), true),
        ] {
            check_gateway_load(&ca, dir.path(), "cn-test", stored, reissued);
        }
        // A node whose code changed presents a certificate naming its new code.
        check_gateway_load(&ca, dir.path(), "cn-other", Some(first), true);
        // Only the key may be missing.
        let before = fs::read_to_string(dir.path().join(GATEWAY_CERT_FILE)).unwrap();
        fs::remove_file(dir.path().join(GATEWAY_KEY_FILE)).unwrap();
        let again = ca
            .load_or_issue_gateway_certificate(dir.path(), "cn-other")
            .unwrap();
        assert_ne!(again.certificate_pem, before);
        assert_eq!(
            read_private_file(&dir.path().join(GATEWAY_KEY_FILE)).unwrap(),
            again.key_pem.as_bytes()
        );
        // A CA whose certificate was made again for its key still issued it.
        fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();
        let recertified = CertificateAuthority::load_or_create(dir.path(), "cn-test").unwrap();
        assert_ne!(recertified.certificate_pem(), ca.certificate_pem());
        check_gateway_load(
            &recertified,
            dir.path(),
            "cn-other",
            Some((&again.certificate_pem, &again.key_pem)),
            false,
        );
        assert_eq!(names_in(dir.path()), files, "no temporary file is left");
    }

    #[test]
    fn the_gateway_key_is_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, issued) = ca_and_gateway_in(dir.path());
        let key_path = dir.path().join(GATEWAY_KEY_FILE);
        // Whoever can read the key can call providers as this node's gateway: the node stops
        // rather than use it, or replace it and hide that it was exposed.
        for loose in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(loose)).unwrap();
            let error = ca
                .load_or_issue_gateway_certificate(dir.path(), "cn-test")
                .err()
                .expect("a key others may read is refused");
            assert!(error.to_string().contains("chmod 600"), "{error:#}");
            assert_eq!(fs::read(&key_path).unwrap(), issued.key_pem.as_bytes());
            assert_eq!(
                fs::read_to_string(dir.path().join(GATEWAY_CERT_FILE)).unwrap(),
                issued.certificate_pem
            );
        }
    }

    #[test]
    fn the_gateway_certificate_is_no_systems_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, gateway) = ca_and_gateway_in(dir.path());
        // The CA signed it for client authentication, so the gateway listener's handshake
        // accepts it; the identity it names is what keeps it from passing for a system.
        let der = CertificateDer::from_pem_slice(gateway.certificate_pem.as_bytes()).unwrap();
        assert!(ca.verifies_client(&der).unwrap());
        let error = identity_of(&der).expect_err("the gateway is no system");
        assert!(
            error.to_string().contains("names no civitas system"),
            "{error:#}"
        );
        assert!(!gateway_uri("cn-test").starts_with(SYSTEM_URI_PREFIX));
    }
}
