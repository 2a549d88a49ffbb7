//! The catalog: directory entries ("resources") with the metadata of the national government
//! information resource catalog guide.
//!
//! A resource's code is `{region}-{classification}-{sequence}`, e.g. `320100-B01-000123`: the GB/T
//! 2260 region of the publishing body, the classification code, and a six-digit sequence number.
//! Codes of resources mounted from other nodes keep their origin's region, so codes stay unique
//! across the national, provincial and municipal platforms.

use std::sync::LazyLock;

use jiff::{Timestamp, civil::Date};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Code, DeviceCode, InvalidValue, NodeCode, RegionCode, Uscc, string_enum};

string_enum! {
    /// What a directory entry describes.
    pub enum ResourceKind {
        Dataset => "dataset",
        Interface => "interface",
        Video => "video",
        File => "file",
    }
}

string_enum! {
    /// Sensitivity of an information item; `personal` items are masked on exchange unless a grant
    /// says otherwise.
    pub enum Sensitivity {
        Public => "public",
        Internal => "internal",
        Sensitive => "sensitive",
        Personal => "personal",
    }
}

string_enum! {
    pub enum DataType {
        String => "string",
        Integer => "integer",
        Decimal => "decimal",
        Boolean => "boolean",
        Date => "date",
        Datetime => "datetime",
        Binary => "binary",
    }
}

string_enum! {
    /// How a personal item is masked: the shape of the value decides what may be kept.
    pub enum MaskKind {
        CitizenId => "citizen_id",
        Name => "name",
        Mobile => "mobile",
        Address => "address",
        BankCard => "bank_card",
        FreeText => "free_text",
        Generic => "generic",
    }
}

string_enum! {
    /// 共享类型: whether other departments may use the resource.
    pub enum SharingType {
        Unconditional => "unconditional",
        Conditional => "conditional",
        None => "none",
    }
}

string_enum! {
    /// How a shared resource is delivered.
    pub enum SharingMethod {
        Interface => "interface",
        Download => "download",
        Exchange => "exchange",
        Video => "video",
    }
}

string_enum! {
    /// 开放类型: whether the public may use the resource.
    pub enum OpenType {
        Open => "open",
        Conditional => "conditional",
        Closed => "closed",
    }
}

string_enum! {
    /// 更新周期.
    pub enum UpdateCycle {
        Realtime => "realtime",
        Daily => "daily",
        Weekly => "weekly",
        Monthly => "monthly",
        Quarterly => "quarterly",
        HalfYearly => "half_yearly",
        Yearly => "yearly",
        Irregular => "irregular",
    }
}

string_enum! {
    /// The three classifications of the catalog guide.
    pub enum ClassificationClass {
        Base => "base",
        Theme => "theme",
        Department => "department",
    }
}

/// One category of the catalog guide's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub class: ClassificationClass,
    pub number: u8,
    pub name: &'static str,
    pub name_en: &'static str,
}

/// The base and theme categories of the catalog guide, numbered in the guide's order, from the
/// shipped `data/catalog-vocabulary.csv`.
static CATEGORIES: LazyLock<Vec<Category>> = LazyLock::new(|| {
    let mut categories = Vec::new();
    let mut theme_number = 0;
    for line in include_str!("../data/catalog-vocabulary.csv")
        .lines()
        .skip(1)
    {
        let fields: Vec<&'static str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "catalog-vocabulary.csv: bad line {line:?}");
        let (class, number) = match fields[0] {
            "base" => (
                ClassificationClass::Base,
                fields[1]
                    .parse()
                    .expect("catalog-vocabulary.csv: base code"),
            ),
            "theme" => {
                theme_number += 1;
                (ClassificationClass::Theme, theme_number)
            }
            _ => continue,
        };
        categories.push(Category {
            class,
            number,
            name: fields[2],
            name_en: fields[3],
        });
    }
    categories
});

/// A classification code: `B` (base), `T` (theme) or `D` (department) and a two-digit category
/// number, e.g. `B01` 人口 or `T03` 社会保障. Base and theme numbers come from the catalog guide;
/// department categories `D01`–`D99` are each department's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassificationCode {
    class: ClassificationClass,
    number: u8,
}

impl ClassificationCode {
    pub fn parse(text: &str) -> Result<ClassificationCode, InvalidValue> {
        let bytes = text.as_bytes();
        let class = match bytes.first() {
            Some(b'B') => ClassificationClass::Base,
            Some(b'T') => ClassificationClass::Theme,
            Some(b'D') => ClassificationClass::Department,
            _ => {
                return Err(InvalidValue::new(format!(
                    "{text:?} is not a classification code: B (base), T (theme) or D (department) and two digits"
                )));
            }
        };
        if bytes.len() != 3 || !bytes[1..].iter().all(u8::is_ascii_digit) {
            return Err(InvalidValue::new(format!(
                "{text:?} is not a classification code: B, T or D and two digits"
            )));
        }
        let number = (bytes[1] - b'0') * 10 + (bytes[2] - b'0');
        let code = ClassificationCode { class, number };
        let known = match class {
            ClassificationClass::Department => number >= 1,
            _ => code.category().is_some(),
        };
        if !known {
            return Err(InvalidValue::new(format!(
                "unknown classification {text}: base categories are B01 to B05, theme categories T01 to T12"
            )));
        }
        Ok(code)
    }

    pub fn class(&self) -> ClassificationClass {
        self.class
    }

    /// The catalog guide's category, for base and theme codes.
    pub fn category(&self) -> Option<&'static Category> {
        CATEGORIES
            .iter()
            .find(|category| category.class == self.class && category.number == self.number)
    }

    /// The Chinese name: the guide's category name, or 部门分类 NN for department categories.
    pub fn name(&self) -> String {
        match self.category() {
            Some(category) => category.name.to_owned(),
            None => format!("部门分类{:02}", self.number),
        }
    }

    pub fn name_en(&self) -> String {
        match self.category() {
            Some(category) => category.name_en.to_owned(),
            None => format!("Department category {:02}", self.number),
        }
    }

    /// Every base and theme classification of the guide.
    pub fn guide() -> impl Iterator<Item = ClassificationCode> {
        CATEGORIES.iter().map(|category| ClassificationCode {
            class: category.class,
            number: category.number,
        })
    }

    pub fn as_string(&self) -> String {
        let letter = match self.class {
            ClassificationClass::Base => 'B',
            ClassificationClass::Theme => 'T',
            ClassificationClass::Department => 'D',
        };
        format!("{letter}{:02}", self.number)
    }
}

impl std::fmt::Display for ClassificationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for ClassificationCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClassificationCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ClassificationCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A resource code: `{region}-{classification}-{sequence}`, e.g. `320100-B01-000123`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceCode(String);

impl ResourceCode {
    pub fn parse(text: &str) -> Result<ResourceCode, InvalidValue> {
        let explain = || {
            InvalidValue::new(format!(
                "{text:?} is not a resource code: REGION-CLASSIFICATION-SEQUENCE, e.g. 320100-B01-000123"
            ))
        };
        let mut parts = text.split('-');
        let (Some(region), Some(classification), Some(sequence), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(explain());
        };
        RegionCode::parse(region)
            .map_err(|e| InvalidValue::new(format!("resource code {text}: {e}")))?;
        ClassificationCode::parse(classification)
            .map_err(|e| InvalidValue::new(format!("resource code {text}: {e}")))?;
        if sequence.len() != 6
            || !sequence.bytes().all(|b| b.is_ascii_digit())
            || sequence == "000000"
        {
            return Err(InvalidValue::new(format!(
                "resource code {text}: the sequence is six digits from 000001"
            )));
        }
        Ok(ResourceCode(text.to_owned()))
    }

    pub fn new(
        region: RegionCode,
        classification: ClassificationCode,
        sequence: u32,
    ) -> ResourceCode {
        debug_assert!((1..=999_999).contains(&sequence));
        ResourceCode(format!("{region}-{classification}-{sequence:06}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn classification(&self) -> ClassificationCode {
        ClassificationCode::parse(&self.0[7..10]).expect("validated on construction")
    }

    pub fn region(&self) -> RegionCode {
        RegionCode::parse(&self.0[..6]).expect("validated on construction")
    }
}

crate::string_newtype_serde!(ResourceCode);

/// One column-level information item (信息项) of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InformationItem {
    /// Stable item code, e.g. `id_number`: lower-case letters, digits and `_`.
    pub code: String,
    pub name: String,
    pub data_type: DataType,
    pub sensitivity: Sensitivity,
    /// How the item is masked when delivered masked; for personal items only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskKind>,
}

/// Whether and how other departments may use a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    #[serde(rename = "type")]
    pub sharing_type: SharingType,
    /// For conditional sharing: the conditions an applicant must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SharingMethod>,
}

/// Everything a data officer says about a resource. The catalog adds version, state and times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceDraft {
    #[schema(value_type = String, example = "320100-B01-000123")]
    pub code: ResourceCode,
    pub kind: ResourceKind,
    /// `B01`–`B05` (base), `T01`–`T12` (theme) or `D01`–`D99` (department).
    #[schema(value_type = String, example = "B01")]
    pub classification: ClassificationCode,
    pub name: String,
    #[serde(default)]
    pub name_en: Option<String>,
    #[schema(value_type = String)]
    pub provider: Uscc,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub provider_system: Option<Code>,
    #[serde(default)]
    pub summary: String,
    /// e.g. `json`, `csv`, `xlsx`, `api`, `stream`.
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub items: Vec<InformationItem>,
    pub sharing: Sharing,
    pub open_type: OpenType,
    pub update_cycle: UpdateCycle,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub published_on: Option<Date>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub related: Vec<ResourceCode>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The node the entry is mounted from; absent for the node's own entries.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub origin_node: Option<NodeCode>,
    /// The camera of a video resource (GB/T 28181 device code).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub device: Option<DeviceCode>,
}

/// A catalog entry as stored: the draft plus what the catalog maintains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Resource {
    #[serde(flatten)]
    pub draft: ResourceDraft,
    /// Starts at 1; every change adds one and keeps the previous version.
    pub version: u32,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A rule of the catalog broken by a draft, naming the field at fault (`items[2].code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DraftError {
    pub field: String,
    pub message: String,
}

fn draft_error(field: impl Into<String>, message: impl Into<String>) -> DraftError {
    DraftError {
        field: field.into(),
        message: message.into(),
    }
}

const MAX_NAME_CHARS: usize = 200;
const MAX_SUMMARY_CHARS: usize = 4000;
const MAX_ITEMS: usize = 500;
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 32;

impl ResourceDraft {
    /// Checks the catalog's rules that need nothing but the draft itself. Rules that need stored
    /// data (the provider exists) are the store's.
    pub fn validate(&self) -> Result<(), DraftError> {
        check_text("name", &self.name, MAX_NAME_CHARS, true)?;
        if let Some(name_en) = &self.name_en {
            check_text("name_en", name_en, MAX_NAME_CHARS * 2, true)?;
        }
        check_text("summary", &self.summary, MAX_SUMMARY_CHARS, false)?;
        check_text("format", &self.format, 64, false)?;
        if self.code.classification() != self.classification {
            return Err(draft_error(
                "code",
                format!(
                    "the code's classification {} differs from the resource's classification {}",
                    self.code.classification(),
                    self.classification
                ),
            ));
        }
        let needs_items = matches!(self.kind, ResourceKind::Dataset | ResourceKind::Interface);
        if needs_items && self.items.is_empty() {
            return Err(draft_error(
                "items",
                format!("a {} resource has at least one information item", self.kind),
            ));
        }
        if self.items.len() > MAX_ITEMS {
            return Err(draft_error("items", format!("at most {MAX_ITEMS} items")));
        }
        for (index, item) in self.items.iter().enumerate() {
            let field = |name: &str| format!("items[{index}].{name}");
            let code_ok = !item.code.is_empty()
                && item.code.len() <= 64
                && item
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && item.code.as_bytes()[0].is_ascii_lowercase();
            if !code_ok {
                return Err(draft_error(
                    field("code"),
                    format!(
                        "{:?} is not an item code: lower-case letters, digits and '_', starting with a letter",
                        item.code
                    ),
                ));
            }
            if self.items[..index]
                .iter()
                .any(|other| other.code == item.code)
            {
                return Err(draft_error(
                    field("code"),
                    format!("item code {} is used twice", item.code),
                ));
            }
            check_text(&field("name"), &item.name, MAX_NAME_CHARS, true)?;
            if item.mask.is_some() && item.sensitivity != Sensitivity::Personal {
                return Err(draft_error(field("mask"), "only personal items are masked"));
            }
        }
        match (
            self.sharing.sharing_type,
            &self.sharing.method,
            &self.sharing.conditions,
        ) {
            (SharingType::None, Some(_), _) => {
                return Err(draft_error(
                    "sharing.method",
                    "a resource that is not shared has no sharing method",
                ));
            }
            (SharingType::None, _, Some(_)) => {
                return Err(draft_error(
                    "sharing.conditions",
                    "a resource that is not shared has no sharing conditions",
                ));
            }
            (SharingType::Conditional, _, None) => {
                return Err(draft_error(
                    "sharing.conditions",
                    "conditional sharing states its conditions",
                ));
            }
            (SharingType::Conditional, _, Some(conditions)) => {
                check_text("sharing.conditions", conditions, MAX_SUMMARY_CHARS, true)?;
            }
            (SharingType::Unconditional, _, Some(_)) => {
                return Err(draft_error(
                    "sharing.conditions",
                    "unconditional sharing has no conditions",
                ));
            }
            _ => {}
        }
        match (self.kind, &self.device) {
            (ResourceKind::Video, None) => {
                return Err(draft_error(
                    "device",
                    "a video resource names its camera's GB/T 28181 device code",
                ));
            }
            (ResourceKind::Video, Some(device)) if !device.is_camera() => {
                return Err(draft_error(
                    "device",
                    format!(
                        "device type {} is not a camera (131 or 132)",
                        device.type_code()
                    ),
                ));
            }
            (ResourceKind::Video, Some(_)) => {}
            (_, Some(_)) => {
                return Err(draft_error("device", "only video resources name a device"));
            }
            (_, None) => {}
        }
        if self.kind == ResourceKind::Interface && self.provider_system.is_none() {
            return Err(draft_error(
                "provider_system",
                "an interface resource names the system that provides it",
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(draft_error("tags", format!("at most {MAX_TAGS} tags")));
        }
        for (index, tag) in self.tags.iter().enumerate() {
            check_text(&format!("tags[{index}]"), tag, MAX_TAG_CHARS, true)?;
            if tag.contains(',') {
                return Err(draft_error(format!("tags[{index}]"), "a tag has no commas"));
            }
        }
        for (index, related) in self.related.iter().enumerate() {
            if related == &self.code {
                return Err(draft_error(
                    format!("related[{index}]"),
                    "a resource is not related to itself",
                ));
            }
        }
        Ok(())
    }

    /// Items that are personal, with the mask each gets (given, or guessed from the item).
    pub fn personal_items(&self) -> impl Iterator<Item = (&InformationItem, MaskKind)> {
        self.items
            .iter()
            .filter(|item| item.sensitivity == Sensitivity::Personal)
            .map(|item| {
                (
                    item,
                    item.mask
                        .unwrap_or_else(|| guess_mask(&item.code, &item.name)),
                )
            })
    }
}

/// Checks a text of a draft. NUL is refused: PostgreSQL cannot store it, and a draft must be
/// valid on either backend.
fn check_text(
    field: &str,
    value: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), DraftError> {
    if required && value.trim().is_empty() {
        return Err(draft_error(field, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(draft_error(
            field,
            format!("must have at most {max_chars} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(draft_error(
            field,
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(())
}

/// Guesses how to mask a personal item from its code or name, for items whose publisher did not
/// say. Common codes of Chinese government data (拼音 initials such as `sfzh`, `xm`, `sjhm`) count.
pub fn guess_mask(code: &str, name: &str) -> MaskKind {
    let code = code.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|needle| code.contains(needle));
    let named = |needles: &[&str]| needles.iter().any(|needle| name.contains(needle));
    if has(&[
        "id_number",
        "id_no",
        "idcard",
        "id_card",
        "sfzh",
        "sfz",
        "citizen_id",
    ]) || named(&["身份证"])
    {
        MaskKind::CitizenId
    } else if has(&["mobile", "phone", "sjhm", "lxdh", "tel"]) || named(&["手机", "电话"]) {
        MaskKind::Mobile
    } else if has(&["bank", "card_no", "yhkh"]) || named(&["银行卡", "账号"]) {
        MaskKind::BankCard
    } else if has(&["address", "addr", "dz", "zz"]) || named(&["地址", "住址"]) {
        MaskKind::Address
    } else if code == "name" || code == "xm" || code.ends_with("_name") || named(&["姓名"]) {
        MaskKind::Name
    } else if has(&["remark", "note", "comment", "bz"]) || named(&["备注", "说明"]) {
        MaskKind::FreeText
    } else {
        MaskKind::Generic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ResourceDraft {
        ResourceDraft {
            code: ResourceCode::parse("320100-B01-000001").unwrap(),
            kind: ResourceKind::Dataset,
            classification: ClassificationCode::parse("B01").unwrap(),
            name: "户籍人口基本信息".into(),
            name_en: Some("Registered population".into()),
            provider: Uscc::parse("91350100M000100Y43").unwrap(),
            provider_system: None,
            summary: String::new(),
            format: "json".into(),
            items: vec![InformationItem {
                code: "id_number".into(),
                name: "公民身份号码".into(),
                data_type: DataType::String,
                sensitivity: Sensitivity::Personal,
                mask: None,
            }],
            sharing: Sharing {
                sharing_type: SharingType::Conditional,
                conditions: Some("仅用于政务服务".into()),
                method: Some(SharingMethod::Interface),
            },
            open_type: OpenType::Closed,
            update_cycle: UpdateCycle::Daily,
            published_on: None,
            related: vec![],
            tags: vec!["人口".into()],
            origin_node: None,
            device: None,
        }
    }

    fn check(change: impl FnOnce(&mut ResourceDraft), expected_field: Option<&str>) {
        let mut draft = draft();
        change(&mut draft);
        match (draft.validate(), expected_field) {
            (Ok(()), None) => {}
            (Err(error), Some(field)) => assert_eq!(error.field, field, "{error}"),
            (result, expected) => panic!("expected {expected:?}, got {result:?}"),
        }
    }

    #[test]
    fn draft_rules() {
        check(|_| {}, None);
        check(|d| d.items.clear(), Some("items"));
        check(|d| d.kind = ResourceKind::File, None);
        check(
            |d| {
                d.kind = ResourceKind::File;
                d.items.clear()
            },
            None,
        );
        check(
            |d| {
                d.sharing = Sharing {
                    sharing_type: SharingType::None,
                    conditions: None,
                    method: Some(SharingMethod::Download),
                }
            },
            Some("sharing.method"),
        );
        check(
            |d| {
                d.sharing = Sharing {
                    sharing_type: SharingType::None,
                    conditions: None,
                    method: None,
                }
            },
            None,
        );
        check(|d| d.sharing.conditions = None, Some("sharing.conditions"));
        check(|d| d.items[0].code = "ID".into(), Some("items[0].code"));
        check(|d| d.items.push(d.items[0].clone()), Some("items[1].code"));
        check(|d| d.items[0].name = " ".into(), Some("items[0].name"));
        check(
            |d| {
                d.items[0].sensitivity = Sensitivity::Public;
                d.items[0].mask = Some(MaskKind::Name)
            },
            Some("items[0].mask"),
        );
        check(|d| d.kind = ResourceKind::Video, Some("device"));
        check(
            |d| {
                d.kind = ResourceKind::Video;
                d.device = Some(DeviceCode::parse("32010200001310000001").unwrap())
            },
            None,
        );
        check(
            |d| {
                d.kind = ResourceKind::Video;
                d.device = Some(DeviceCode::parse("32010200001110000001").unwrap())
            },
            Some("device"),
        );
        check(
            |d| d.kind = ResourceKind::Interface,
            Some("provider_system"),
        );
        check(
            |d| d.classification = ClassificationCode::parse("T02").unwrap(),
            Some("code"),
        );
        check(|d| d.related.push(d.code.clone()), Some("related[0]"));
        check(|d| d.name = "名".repeat(201), Some("name"));
    }

    #[test]
    fn codes() {
        let code = ResourceCode::parse("320100-T03-000042").unwrap();
        assert_eq!(code.classification().name(), "社会保障");
        assert_eq!(code.region().as_str(), "320100");
        for bad in [
            "320100-B01-42",
            "320199-B01-000001",
            "320100-B09-000001",
            "320100-X01-000001",
            "320100-B01-000000",
            "320100B01000001",
        ] {
            assert!(ResourceCode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ClassificationCode::guide().count(), 17);
        assert_eq!(
            ClassificationCode::parse("D42").unwrap().name(),
            "部门分类42"
        );
        assert_eq!(
            ResourceCode::new(
                RegionCode::parse("320102").unwrap(),
                ClassificationCode::parse("B02").unwrap(),
                7
            )
            .as_str(),
            "320102-B02-000007"
        );
    }

    #[test]
    fn masks_are_guessed_from_common_item_codes() {
        assert_eq!(guess_mask("sfzh", ""), MaskKind::CitizenId);
        assert_eq!(guess_mask("xm", ""), MaskKind::Name);
        assert_eq!(guess_mask("applicant_name", ""), MaskKind::Name);
        assert_eq!(guess_mask("x1", "联系电话"), MaskKind::Mobile);
        assert_eq!(guess_mask("home_address", ""), MaskKind::Address);
        assert_eq!(guess_mask("salary", ""), MaskKind::Generic);
    }
}
