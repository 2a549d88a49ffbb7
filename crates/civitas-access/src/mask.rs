//! Masking of personal data: the gateway's toolbox for information items marked personal.
//!
//! Every function here is pure and total: it accepts any text, never panics, and only ever replaces
//! characters by [`MASK_CHARACTER`] (or removes the whole value, for free text). Three rules hold for
//! every kind, and the property tests check them:
//!
//! - **length is kept**: the masked value has exactly as many characters (Unicode scalar values) as
//!   the input, for every kind but [`MaskKind::FreeText`], which is removed. Keeping the length
//!   keeps fixed-width formats (an 18-character ID stays 18 characters) so consumers' parsers do not
//!   break, and it leaks nothing the format does not already say;
//! - **idempotence**: `mask(kind, mask(kind, x)) == mask(kind, x)`, so a value masked twice (by two
//!   gateways on the way) looks the same as one masked once. This is why `*` counts as a digit where
//!   a format expects digits;
//! - **fail closed**: a value that does not have the shape of its kind is masked entirely rather
//!   than guessed at.
//!
//! What each [`MaskKind`] (the catalog's type) keeps:
//!
//! - `citizen_id`: a GB 11643 citizen ID number; the first 6 and the last 4 characters;
//! - `name`: a person's name; the family name;
//! - `mobile`: a mainland mobile number; the first 3 and the last 4 digits (and a `+86` prefix);
//! - `address`: a postal address; everything down to the district or county;
//! - `bank_card`: a bank card number; the last 4 digits;
//! - `free_text`: free text that may hold anything personal; nothing, the value is removed;
//! - `generic`: any other personal value; the first and the last character of longer values.

pub use civitas_core::catalog::MaskKind;
use civitas_core::{RegionCode, registry::Level};

/// The character that stands for one hidden character.
pub const MASK_CHARACTER: char = '*';

/// Whether masked values of `kind` have as many characters as the input. Only free text, which
/// is removed, does not.
pub fn keeps_length(kind: MaskKind) -> bool {
    kind != MaskKind::FreeText
}

/// Masks `value` as `kind` says. `None` means the field is removed from the delivered data.
pub fn mask(kind: MaskKind, value: &str) -> Option<String> {
    match kind {
        MaskKind::CitizenId => Some(mask_citizen_id(value)),
        MaskKind::Name => Some(mask_name(value)),
        MaskKind::Mobile => Some(mask_mobile(value)),
        MaskKind::Address => Some(mask_address(value)),
        MaskKind::BankCard => Some(mask_bank_card(value)),
        MaskKind::FreeText => mask_free_text(value),
        MaskKind::Generic => Some(mask_generic(value)),
    }
}

/// Masks a citizen ID number: `320102199003071234` becomes `320102********1234`. The region (first
/// 6) and the last 4 stay, which is what counter staff use to confirm a person without the birth
/// date. A first-generation 15-digit number keeps its first 6 and last 3. Anything else that does
/// not look like an ID number is hidden entirely.
pub fn mask_citizen_id(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    let (keep_head, keep_tail) = match characters.len() {
        18 if characters[..17].iter().all(|&c| is_digit_slot(c))
            && (is_digit_slot(characters[17]) || matches!(characters[17], 'X' | 'x')) =>
        {
            (6, 4)
        }
        15 if characters.iter().all(|&c| is_digit_slot(c)) => (6, 3),
        _ => (0, 0),
    };
    characters
        .iter()
        .enumerate()
        .map(|(position, &character)| {
            if position < keep_head || position >= characters.len() - keep_tail {
                character
            } else {
                MASK_CHARACTER
            }
        })
        .collect()
}

/// Compound family names of two characters. A name that starts with one of these and has at least
/// three characters keeps both (`欧阳娜娜` → `欧阳**`); a two-character name is family name plus
/// given name whatever it starts with.
pub const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "令狐", "端木", "轩辕", "独孤", "南宫", "西门", "百里", "呼延", "澹台", "公冶", "太史",
    "申屠", "闻人", "万俟", "钟离", "宗政", "濮阳", "淳于", "单于", "赫连", "拓跋", "司空", "公羊",
    "第五", "东郭", "仲孙", "鲜于", "闾丘", "谷梁", "左丘", "梁丘", "巫马", "公西", "漆雕", "乐正",
    "壤驷", "公良", "段干", "东门", "羊舌", "微生", "东里",
];

/// Masks a person's name, keeping the family name: `张三` → `张*`, `欧阳娜娜` → `欧阳**`. A name
/// that starts with a Latin letter keeps the first letter of each word (`John Smith` →
/// `J*** S****`), words being separated by white space, `-` or `.`. A one-character name is hidden
/// entirely, since its one character may be all there is.
pub fn mask_name(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    if characters.len() <= 1 {
        return MASK_CHARACTER.to_string().repeat(characters.len());
    }
    if characters[0].is_ascii_alphabetic() {
        let mut at_word_start = true;
        return characters
            .iter()
            .map(|&character| {
                if character.is_whitespace() || character == '-' || character == '.' {
                    at_word_start = true;
                    character
                } else if at_word_start {
                    at_word_start = false;
                    character
                } else {
                    MASK_CHARACTER
                }
            })
            .collect();
    }
    let family_name_length = if characters.len() >= 3
        && COMPOUND_SURNAMES
            .iter()
            .any(|surname| value.starts_with(surname))
    {
        2
    } else {
        1
    };
    characters
        .iter()
        .enumerate()
        .map(|(position, &character)| {
            if position < family_name_length {
                character
            } else {
                MASK_CHARACTER
            }
        })
        .collect()
}

/// Masks a mainland mobile number: `13812345678` → `138****5678`. The network prefix and the last
/// four digits stay (that is what people read back on the phone); a `+86` or `86` country prefix
/// stays too, and spaces or `-` between digits keep their place. A value that is not an 11-digit
/// mainland mobile number (a landline, a foreign number, text) is hidden entirely.
pub fn mask_mobile(value: &str) -> String {
    let mut characters: Vec<char> = value.chars().collect();
    match mobile_national_digit_positions(&characters) {
        Some(positions) => {
            for &position in &positions[3..7] {
                characters[position] = MASK_CHARACTER;
            }
            characters.into_iter().collect()
        }
        None => hide_all(&characters),
    }
}

/// Positions of the 11 digits of the national number, when `characters` is a mainland mobile
/// number with an optional country prefix and `' '`/`-` separators.
fn mobile_national_digit_positions(characters: &[char]) -> Option<Vec<usize>> {
    let plus_prefix = characters.starts_with(&['+', '8', '6']);
    let start = if plus_prefix { 3 } else { 0 };
    let mut digit_positions = Vec::with_capacity(13);
    for (position, &character) in characters.iter().enumerate().skip(start) {
        if is_digit_slot(character) {
            digit_positions.push(position);
        } else if character != ' ' && character != '-' {
            return None;
        }
    }
    if !plus_prefix
        && digit_positions.len() == 13
        && characters[digit_positions[0]] == '8'
        && characters[digit_positions[1]] == '6'
    {
        digit_positions.drain(..2);
    }
    let is_mobile = digit_positions.len() == 11 && characters[digit_positions[0]] == '1';
    is_mobile.then_some(digit_positions)
}

/// Provincial-level names that are cities themselves: their addresses go straight on to a district.
fn is_municipality(provincial_name: &str) -> bool {
    provincial_name.ends_with('市')
}

/// How many leading characters are a provincial-level name from the GB/T 2260 table, and whether
/// it is a municipality.
fn provincial_prefix(value: &str) -> Option<(usize, bool)> {
    RegionCode::all()
        .map(|code| code.region())
        .filter(|region| region.level == Level::Provincial)
        .find(|region| value.starts_with(region.name))
        .map(|region| (region.name.chars().count(), is_municipality(region.name)))
}

const CITY_MARKERS: &[&str] = &["市", "自治州", "地区", "盟"];
const DISTRICT_MARKERS: &[&str] = &["区", "县", "旗", "市"];
/// Characters that never occur in the name of a city or district but do in street addresses. A
/// name segment that meets one of them means the address has no recognizable city or district
/// where one was expected, and is then hidden entirely rather than partly revealed.
const STREET_CHARACTERS: &[char] = &[
    '路', '街', '巷', '弄', '号', '栋', '幢', '楼', '室', '村', '组', '院', '苑', '座', '层',
];
/// Longest city name segment, with its marker: `克孜勒苏柯尔克孜自治州` has 11 characters.
const CITY_SEGMENT_LIMIT: usize = 12;
/// Longest district name segment, with its marker: `鄂温克族自治旗` has 7 characters.
const DISTRICT_SEGMENT_LIMIT: usize = 8;

/// Masks a postal address down to the district or county: `江苏省南京市玄武区中山路100号3栋`
/// becomes `江苏省南京市玄武区*********`. The kept part is an optional provincial-level name from
/// the GB/T 2260 table, a city (`市`, `自治州`, `地区`, `盟`; skipped after a municipality such as
/// `北京市`) and then the first district-level marker (`区`, `县`, `旗`, or `市` of a county-level
/// city; `市辖区` ends in `区`). City and district names must be Chinese characters that never occur
/// in street names. When no city and district are found that way the address is hidden entirely:
/// keeping a guessed prefix could reveal a street and house number.
pub fn mask_address(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    let keep = address_district_end(value, &characters).unwrap_or(0);
    characters
        .iter()
        .enumerate()
        .map(|(position, &character)| {
            if position < keep {
                character
            } else {
                MASK_CHARACTER
            }
        })
        .collect()
}

/// The number of leading characters of an address that name its province, city and district.
fn address_district_end(value: &str, characters: &[char]) -> Option<usize> {
    let (mut position, municipality) = provincial_prefix(value).unwrap_or((0, false));
    if !municipality {
        position = named_segment_end(characters, position, CITY_MARKERS, CITY_SEGMENT_LIMIT)?;
    }
    named_segment_end(
        characters,
        position,
        DISTRICT_MARKERS,
        DISTRICT_SEGMENT_LIMIT,
    )
}

/// Finds a place name starting at `start` that ends with one of `markers`, at least one name
/// character before the marker and at most `limit` characters in all. Returns the position just
/// after the marker.
fn named_segment_end(
    characters: &[char],
    start: usize,
    markers: &[&str],
    limit: usize,
) -> Option<usize> {
    let mut position = start;
    while position < characters.len() && position - start < limit {
        if position > start
            && let Some(marker_length) = marker_at(characters, position, markers)
            && position + marker_length - start <= limit
        {
            return Some(position + marker_length);
        }
        let character = characters[position];
        let is_name_character = ('\u{4E00}'..='\u{9FFF}').contains(&character)
            && !STREET_CHARACTERS.contains(&character);
        if !is_name_character {
            return None;
        }
        position += 1;
    }
    None
}

/// The length in characters of the marker of `markers` that starts at `position`, if any.
fn marker_at(characters: &[char], position: usize, markers: &[&str]) -> Option<usize> {
    markers.iter().find_map(|marker| {
        let marker_characters = marker.chars();
        let length = marker.chars().count();
        let matches = characters.len() >= position + length
            && marker_characters
                .zip(&characters[position..position + length])
                .all(|(expected, &actual)| expected == actual);
        matches.then_some(length)
    })
}

/// Masks a bank card number (12 to 19 digits, spaces or `-` allowed between them): only the last 4
/// digits stay, as on a receipt. Anything else is hidden entirely.
pub fn mask_bank_card(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    let mut digit_positions = Vec::with_capacity(19);
    for (position, &character) in characters.iter().enumerate() {
        if is_digit_slot(character) {
            digit_positions.push(position);
        } else if character != ' ' && character != '-' {
            return hide_all(&characters);
        }
    }
    if !(12..=19).contains(&digit_positions.len()) {
        return hide_all(&characters);
    }
    let first_kept = digit_positions[digit_positions.len() - 4];
    characters
        .iter()
        .enumerate()
        .map(|(position, &character)| {
            if position >= first_kept || !is_digit_slot(character) {
                character
            } else {
                MASK_CHARACTER
            }
        })
        .collect()
}

/// Free text marked personal can hold anything (a diagnosis, a complaint), so no partial mask is
/// safe: the field is removed.
pub fn mask_free_text(_value: &str) -> Option<String> {
    None
}

/// Values shorter than this are hidden entirely by [`mask_generic`]: keeping two ends of a
/// three-character value would reveal most of it.
pub const GENERIC_SHORTEST_PARTLY_SHOWN: usize = 4;

/// Masks any other personal value: values of at least [`GENERIC_SHORTEST_PARTLY_SHOWN`] characters
/// keep their first and last character (`A1234567` → `A******7`), shorter ones are hidden entirely.
pub fn mask_generic(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    if characters.len() < GENERIC_SHORTEST_PARTLY_SHOWN {
        return hide_all(&characters);
    }
    let last = characters.len() - 1;
    characters
        .iter()
        .enumerate()
        .map(|(position, &character)| {
            if position == 0 || position == last {
                character
            } else {
                MASK_CHARACTER
            }
        })
        .collect()
}

/// A digit, or a digit already hidden: counting `*` as a digit keeps masking idempotent.
fn is_digit_slot(character: char) -> bool {
    character.is_ascii_digit() || character == MASK_CHARACTER
}

fn hide_all(characters: &[char]) -> String {
    characters.iter().map(|_| MASK_CHARACTER).collect()
}

/// Guesses the mask kind of an information item from its code or name and its data type, for the
/// catalog to suggest when an item is marked personal. Codes are matched whole or as the last
/// `_`/`-` separated part (`applicant_sfzh`), in English, pinyin initials as used in Chinese
/// government schemas, or Chinese. Returns `None` when nothing is recognized; the catalog then
/// falls back to [`MaskKind::Generic`] or asks.
pub fn mask_kind_for(item_code: &str, data_type: &str) -> Option<MaskKind> {
    let code = item_code.trim().to_ascii_lowercase();
    let last_part = code.rsplit(['_', '-']).next().unwrap_or(&code);
    for (kind, codes, chinese) in KIND_HINTS {
        let matches_code = codes.iter().any(|known| {
            code == *known
                || code.ends_with(&format!("_{known}"))
                || code.ends_with(&format!("-{known}"))
        });
        let matches_chinese = chinese.iter().any(|known| item_code.contains(known));
        if matches_code || matches_chinese {
            return Some(*kind);
        }
    }
    if matches!(
        last_part,
        "remark" | "remarks" | "note" | "notes" | "bz" | "comment"
    ) || matches!(
        data_type.trim().to_ascii_lowercase().as_str(),
        "text" | "clob" | "longtext" | "mediumtext"
    ) {
        return Some(MaskKind::FreeText);
    }
    None
}

/// Item codes and Chinese item names that suggest a mask kind. Order matters: the first match wins,
/// so the more specific kinds (bank card before a plain number) come first.
const KIND_HINTS: &[(MaskKind, &[&str], &[&str])] = &[
    (
        MaskKind::CitizenId,
        &[
            "id_number",
            "id_no",
            "idno",
            "id_card",
            "idcard",
            "id_card_no",
            "citizen_id",
            "sfzh",
            "sfzhm",
            "gmsfhm",
            "zjhm",
        ],
        &["身份证", "证件号码", "公民身份号码"],
    ),
    (
        MaskKind::BankCard,
        &[
            "bank_card",
            "bank_card_no",
            "bankcard",
            "card_no",
            "bank_account",
            "account_no",
            "yhkh",
            "yhzh",
        ],
        &["银行卡", "银行账号", "银行帐号"],
    ),
    (
        MaskKind::Mobile,
        &[
            "mobile",
            "mobile_phone",
            "mobile_no",
            "phone",
            "phone_no",
            "phone_number",
            "cellphone",
            "tel",
            "telephone",
            "sjhm",
            "sjh",
            "lxdh",
            "dh",
        ],
        &["手机", "电话"],
    ),
    (
        MaskKind::Address,
        &[
            "address", "addr", "dz", "zz", "jtzz", "hjdz", "xzz", "jzdz", "txdz",
        ],
        &["地址", "住址", "住所"],
    ),
    (
        MaskKind::Name,
        &[
            "name",
            "full_name",
            "person_name",
            "xm",
            "xingming",
            "fddbr",
            "lxr",
        ],
        &["姓名", "联系人", "法定代表人"],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: MaskKind, input: &str, expected: Option<&str>) {
        assert_eq!(
            mask(kind, input).as_deref(),
            expected,
            "{kind} of {input:?}"
        );
    }

    #[test]
    fn examples_of_every_kind() {
        use MaskKind::*;
        let table: &[(MaskKind, &str, Option<&str>)] = &[
            (CitizenId, "320102199003071234", Some("320102********1234")),
            (CitizenId, "11010519491231002X", Some("110105********002X")),
            (CitizenId, "320102900307123", Some("320102******123")),
            (CitizenId, "32010219900307123", Some("*****************")),
            (CitizenId, "not an id number!!", Some("******************")),
            (Name, "张三", Some("张*")),
            (Name, "张三丰", Some("张**")),
            (Name, "欧阳娜娜", Some("欧阳**")),
            (Name, "司马懿", Some("司马*")),
            (Name, "欧阳", Some("欧*")),
            (Name, "张", Some("*")),
            (Name, "", Some("")),
            (Name, "John Smith", Some("J*** S****")),
            (Name, "Mary-Jane O'Neil", Some("M***-J*** O*****")),
            (Name, "买买提·艾力", Some("买*****")),
            (Mobile, "13812345678", Some("138****5678")),
            (Mobile, "+8613812345678", Some("+86138****5678")),
            (Mobile, "8613812345678", Some("86138****5678")),
            (Mobile, "+86 138-1234-5678", Some("+86 138-****-5678")),
            (Mobile, "025-84561234", Some("************")),
            (Mobile, "23812345678", Some("***********")),
            (
                Address,
                "江苏省南京市玄武区中山路100号3栋",
                Some("江苏省南京市玄武区*********"),
            ),
            (Address, "北京市朝阳区建国路1号", Some("北京市朝阳区*****")),
            (Address, "南京市江宁区东山街道", Some("南京市江宁区****")),
            (
                Address,
                "江苏省苏州市昆山市玉山镇前进路1号",
                Some("江苏省苏州市昆山市********"),
            ),
            (
                Address,
                "内蒙古自治区呼伦贝尔市鄂温克族自治旗巴彦托海镇",
                Some("内蒙古自治区呼伦贝尔市鄂温克族自治旗*****"),
            ),
            (Address, "中山路100号某市场区3栋", Some("*************")),
            (Address, "江苏省玄武区中山路", Some("*********")),
            (BankCard, "6222021234567890123", Some("***************0123")),
            (BankCard, "6222 0212 3456 7890", Some("**** **** **** 7890")),
            (BankCard, "12345678901", Some("***********")),
            (FreeText, "患者自述头痛三天", None),
            (Generic, "A1234567", Some("A******7")),
            (Generic, "abc", Some("***")),
            (Generic, "某某单位", Some("某**位")),
        ];
        for (kind, input, expected) in table {
            check(*kind, input, *expected);
        }
    }

    #[test]
    fn every_kind_but_free_text_keeps_length() {
        for kind in MaskKind::ALL {
            assert_eq!(keeps_length(*kind), *kind != MaskKind::FreeText);
        }
    }

    #[test]
    fn guesses_kinds_from_item_codes() {
        let table: &[(&str, &str, Option<MaskKind>)] = &[
            ("id_number", "string", Some(MaskKind::CitizenId)),
            ("SFZH", "string", Some(MaskKind::CitizenId)),
            ("applicant_sfzh", "string", Some(MaskKind::CitizenId)),
            ("身份证号码", "string", Some(MaskKind::CitizenId)),
            ("name", "string", Some(MaskKind::Name)),
            ("xm", "string", Some(MaskKind::Name)),
            ("applicant_name", "string", Some(MaskKind::Name)),
            ("mobile", "string", Some(MaskKind::Mobile)),
            ("phone", "string", Some(MaskKind::Mobile)),
            ("sjhm", "string", Some(MaskKind::Mobile)),
            ("address", "string", Some(MaskKind::Address)),
            ("dz", "string", Some(MaskKind::Address)),
            ("家庭住址", "string", Some(MaskKind::Address)),
            ("bank_card", "string", Some(MaskKind::BankCard)),
            ("yhkh", "string", Some(MaskKind::BankCard)),
            ("remark", "string", Some(MaskKind::FreeText)),
            ("complaint", "text", Some(MaskKind::FreeText)),
            ("birth_year", "integer", None),
        ];
        for (code, data_type, expected) in table {
            assert_eq!(mask_kind_for(code, data_type), *expected, "{code}");
        }
    }
}
