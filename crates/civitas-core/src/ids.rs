//! Identifier types: each validates on construction and keeps its canonical text.

use crate::{InvalidValue, string_newtype_serde};

/// The character set of GB 32100 unified social credit codes: digits and the upper-case letters
/// without I, O, Z, S and V. A character's position in this string is its numeric value.
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_CODE_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
const CITIZEN_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CITIZEN_ID_CHECK: &[u8; 11] = b"10X98765432";

/// An 18-character unified social credit code (GB 32100), the identifier of an organization.
///
/// Layout: registration authority (1), organization category (1), GB/T 2260 region (6), GB 11714
/// organization code (8 + its own check character), check character (1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

impl Uscc {
    pub fn parse(text: &str) -> Result<Uscc, InvalidValue> {
        let bytes = text.as_bytes();
        if bytes.len() != 18 {
            return Err(InvalidValue::new(format!(
                "a unified social credit code has 18 characters, got {}",
                text.chars().count()
            )));
        }
        let mut values = [0u32; 18];
        for (position, &byte) in bytes.iter().enumerate() {
            values[position] = uscc_value(byte).ok_or_else(|| {
                InvalidValue::new(format!(
                    "character {} ({:?}) is not allowed in a unified social credit code",
                    position + 1,
                    byte as char
                ))
            })?;
        }
        if !bytes[2..8].iter().all(u8::is_ascii_digit) {
            return Err(InvalidValue::new(
                "characters 3 to 8 of a unified social credit code must be a region code of 6 digits",
            ));
        }
        let expected_org_check = org_code_check(&bytes[8..16]);
        if bytes[16] != expected_org_check {
            return Err(InvalidValue::new(format!(
                "bad check character {:?} of the organization code in characters 9 to 17, expected {:?}",
                bytes[16] as char, expected_org_check as char
            )));
        }
        let expected_check = uscc_check(&values[..17]);
        if bytes[17] != expected_check {
            return Err(InvalidValue::new(format!(
                "bad check character {:?}, expected {:?}",
                bytes[17] as char, expected_check as char
            )));
        }
        Ok(Uscc(text.to_owned()))
    }

    /// Builds a valid code from its parts, computing both check characters. `authority` and
    /// `category` are single characters of the code's character set, `region` six digits and
    /// `organization` the eight characters of the GB 11714 organization code without its check.
    pub fn from_parts(
        authority: char,
        category: char,
        region: &str,
        organization: &str,
    ) -> Result<Uscc, InvalidValue> {
        let mut text = String::with_capacity(18);
        text.push(authority);
        text.push(category);
        text.push_str(region);
        text.push_str(organization);
        if text.len() != 16 || !text.is_ascii() {
            return Err(InvalidValue::new(
                "a unified social credit code is built from 1 + 1 + 6 + 8 ascii characters",
            ));
        }
        let bytes = text.as_bytes();
        text.push(org_code_check(&bytes[8..16]) as char);
        let mut values = [0u32; 17];
        for (position, byte) in text.bytes().enumerate() {
            values[position] = uscc_value(byte).ok_or_else(|| {
                InvalidValue::new(format!("character {:?} is not allowed", byte as char))
            })?;
        }
        text.push(uscc_check(&values) as char);
        Uscc::parse(&text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit GB/T 2260 region code embedded in characters 3 to 8.
    pub fn embedded_region(&self) -> &str {
        &self.0[2..8]
    }
}

string_newtype_serde!(Uscc);

fn uscc_value(byte: u8) -> Option<u32> {
    USCC_CHARSET
        .iter()
        .position(|&c| c == byte)
        .map(|index| index as u32)
}

fn uscc_check(values: &[u32]) -> u8 {
    debug_assert_eq!(values.len(), 17);
    let sum: u32 = values
        .iter()
        .zip(USCC_WEIGHTS)
        .map(|(value, weight)| value * weight)
        .sum();
    USCC_CHARSET[((31 - sum % 31) % 31) as usize]
}

/// GB 11714 check character over the eight body characters of an organization code. Letters count
/// as 10 for A up to 35 for Z.
fn org_code_check(body: &[u8]) -> u8 {
    debug_assert_eq!(body.len(), 8);
    let sum: u32 = body
        .iter()
        .zip(ORG_CODE_WEIGHTS)
        .map(|(&byte, weight)| {
            let value = match byte {
                b'0'..=b'9' => u32::from(byte - b'0'),
                b'A'..=b'Z' => u32::from(byte - b'A') + 10,
                _ => 0,
            };
            value * weight
        })
        .sum();
    match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        digit => b'0' + digit as u8,
    }
}

/// An 18-character resident identity number (GB 11643): region (6), birth date (8), sequence (3),
/// check character. A lower-case `x` check character is accepted and stored upper-case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CitizenId(String);

impl CitizenId {
    pub fn parse(text: &str) -> Result<CitizenId, InvalidValue> {
        let bytes = text.as_bytes();
        if bytes.len() != 18 {
            return Err(InvalidValue::new(format!(
                "a citizen ID number has 18 characters, got {}",
                text.chars().count()
            )));
        }
        if !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(InvalidValue::new(
                "the first 17 characters of a citizen ID number must be digits",
            ));
        }
        let year = digits(&bytes[6..10]);
        let month = digits(&bytes[10..12]);
        let day = digits(&bytes[12..14]);
        if !(1900..=2099).contains(&year) || !is_valid_date(year, month, day) {
            return Err(InvalidValue::new(format!(
                "characters 7 to 14 of a citizen ID number must be a birth date, got {}",
                &text[6..14]
            )));
        }
        let expected = citizen_id_check(&bytes[..17]);
        let given = bytes[17].to_ascii_uppercase();
        if given != expected {
            return Err(InvalidValue::new(format!(
                "bad check character {:?} of a citizen ID number, expected {:?}",
                bytes[17] as char, expected as char
            )));
        }
        let mut canonical = text[..17].to_owned();
        canonical.push(given as char);
        Ok(CitizenId(canonical))
    }

    /// Builds a valid number from a region, a birth date and a three-digit sequence number.
    pub fn from_parts(
        region: &str,
        year: u32,
        month: u32,
        day: u32,
        sequence: u32,
    ) -> Result<CitizenId, InvalidValue> {
        let body = format!("{region}{year:04}{month:02}{day:02}{sequence:03}");
        if body.len() != 17 || !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue::new(
                "a citizen ID number is built from a 6-digit region, a date and a 3-digit sequence",
            ));
        }
        let check = citizen_id_check(body.as_bytes()) as char;
        CitizenId::parse(&format!("{body}{check}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The birth date as (year, month, day).
    pub fn birth_date(&self) -> (u32, u32, u32) {
        let bytes = self.0.as_bytes();
        (
            digits(&bytes[6..10]),
            digits(&bytes[10..12]),
            digits(&bytes[12..14]),
        )
    }

    /// The GB/T 2260 region code of registration (characters 1 to 6).
    pub fn region(&self) -> &str {
        &self.0[..6]
    }
}

// A citizen ID number is personal data: its Debug form never shows it whole, so it cannot leak into
// logs by accident.
impl std::fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CitizenId({}********{})", &self.0[..6], &self.0[14..])
    }
}

string_newtype_serde!(CitizenId);

fn citizen_id_check(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip(CITIZEN_ID_WEIGHTS)
        .map(|(&byte, weight)| u32::from(byte - b'0') * weight)
        .sum();
    CITIZEN_ID_CHECK[(sum % 11) as usize]
}

fn digits(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |value, &byte| value * 10 + u32::from(byte - b'0'))
}

fn is_valid_date(year: u32, month: u32, day: u32) -> bool {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// A 20-digit GB/T 28181 device code: centre code (6-digit region + 2-digit unit), industry (2),
/// type (3, e.g. 131 camera, 132 network camera), network identifier (1), serial number (6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceCode(String);

impl DeviceCode {
    /// Device type codes of cameras, the devices a video resource may name.
    pub const CAMERA_TYPES: [u32; 2] = [131, 132];

    pub fn parse(text: &str) -> Result<DeviceCode, InvalidValue> {
        if text.len() != 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue::new(
                "a GB/T 28181 device code has exactly 20 digits",
            ));
        }
        Ok(DeviceCode(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The GB/T 2260 region code of the centre (digits 1 to 6).
    pub fn region(&self) -> &str {
        &self.0[..6]
    }

    /// The device type code (digits 11 to 13).
    pub fn type_code(&self) -> u32 {
        digits(&self.0.as_bytes()[10..13])
    }

    pub fn is_camera(&self) -> bool {
        DeviceCode::CAMERA_TYPES.contains(&self.type_code())
    }
}

string_newtype_serde!(DeviceCode);

/// The code of a system, service or scenario: 1 to 64 characters of lower-case ASCII letters,
/// digits, `-` and `_`, starting with a letter or digit. Codes appear in URLs and ledger records, so
/// they are kept to characters that need no escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(String);

impl Code {
    pub fn parse(text: &str) -> Result<Code, InvalidValue> {
        let bytes = text.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !first_ok || !rest_ok || bytes.len() > 64 {
            return Err(InvalidValue::new(format!(
                "{text:?} is not a valid code: use 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
            )));
        }
        Ok(Code(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype_serde!(Code);

/// The code of a civitas node, such as `cn-js-nanjing`. It is the origin line of the node's ledger
/// checkpoints and the name of its signing key, so it is restricted like [`Code`] without `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeCode(String);

impl NodeCode {
    pub fn parse(text: &str) -> Result<NodeCode, InvalidValue> {
        let valid = Code::parse(text).is_ok() && !text.contains('_');
        if !valid {
            return Err(InvalidValue::new(format!(
                "{text:?} is not a valid node code: use 1 to 64 lower-case letters, digits and '-'"
            )));
        }
        Ok(NodeCode(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype_serde!(NodeCode);

#[cfg(test)]
mod tests {
    use super::*;

    fn check_uscc(text: &str, expected: Result<(), &str>) {
        let actual = Uscc::parse(text).map(|_| ()).map_err(|e| e.message);
        match expected {
            Ok(()) => assert_eq!(actual, Ok(()), "{text}"),
            Err(fragment) => {
                let message = actual.expect_err(text);
                assert!(message.contains(fragment), "{text}: {message}");
            }
        }
    }

    #[test]
    fn uscc_rules() {
        // Published codes of real bodies.
        check_uscc("91350100M000100Y43", Ok(()));
        check_uscc("91110000600037341L", Ok(()));
        check_uscc("91350100M000100Y44", Err("bad check character '4'"));
        check_uscc("91350100M000100Y4", Err("18 characters"));
        check_uscc("91350100M000100YI3", Err("not allowed"));
        check_uscc("913501O0M000100Y43", Err("not allowed"));
        check_uscc("91350100M000100X43", Err("organization code"));
    }

    #[test]
    fn uscc_from_parts_round_trips() {
        let code = Uscc::from_parts('1', '1', "320100", "MB1A2B3C").unwrap();
        assert_eq!(code.embedded_region(), "320100");
        assert_eq!(Uscc::parse(code.as_str()).unwrap(), code);
    }

    #[test]
    fn citizen_id_rules() {
        let valid = "11010519491231002X";
        assert_eq!(CitizenId::parse(valid).unwrap().as_str(), valid);
        assert_eq!(
            CitizenId::parse("11010519491231002x").unwrap().as_str(),
            valid
        );
        let bad_check = CitizenId::parse("110105194912310021").unwrap_err();
        assert!(bad_check.message.contains("expected 'X'"), "{bad_check}");
        assert!(
            CitizenId::parse("110105194902300021").is_err(),
            "30 February"
        );
        assert!(CitizenId::parse("1101051949123100").is_err());
        let built = CitizenId::from_parts("320102", 1990, 2, 28, 123).unwrap();
        assert_eq!(built.birth_date(), (1990, 2, 28));
        assert_eq!(built.region(), "320102");
        assert!(!format!("{built:?}").contains("19900228"));
    }

    #[test]
    fn device_codes() {
        let camera = DeviceCode::parse("32010200001310000001").unwrap();
        assert_eq!(camera.region(), "320102");
        assert_eq!(camera.type_code(), 131);
        assert!(camera.is_camera());
        assert!(DeviceCode::parse("3201020000131000000").is_err());
        assert!(DeviceCode::parse("3201020000131000000a").is_err());
    }

    #[test]
    fn codes() {
        for good in ["a", "hr-ss_01", "0x"] {
            assert!(Code::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "A", "a b", "a/b", &"a".repeat(65)] {
            assert!(Code::parse(bad).is_err(), "{bad}");
        }
        assert!(NodeCode::parse("cn-js-nanjing").is_ok());
        assert!(NodeCode::parse("cn_js").is_err());
    }
}
