//! The bodies of a synthetic Nanjing: municipal bureaus, district governments and their
//! departments, and the national and provincial bodies whose catalogs Nanjing mounts.

use std::collections::HashSet;

use civitas_core::registry::{self, Level};
use civitas_core::{RegionCode, Uscc};
use jiff::Timestamp;

use crate::random::Random;

/// A government body that can publish catalog entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub code: Uscc,
    pub name: String,
    pub name_en: String,
    pub level: Level,
    pub region: RegionCode,
    /// The district government of a district department.
    pub parent: Option<Uscc>,
}

impl Organization {
    /// The registry's record of the organization, active and created at `at`.
    pub fn to_registry(&self, at: Timestamp) -> registry::Organization {
        registry::Organization {
            code: self.code.clone(),
            name: self.name.clone(),
            name_en: Some(self.name_en.clone()),
            level: self.level,
            region: self.region,
            parent: self.parent.clone(),
            active: true,
            created_at: at,
            updated_at: at,
        }
    }
}

/// GB 32100 organization categories of the registration authority 1 (机构编制): 1 a government
/// organ, 2 a public institution (事业单位).
const ORGAN: char = '1';
const INSTITUTION: char = '2';

/// (Chinese name, English name, category) of the municipal bodies.
const MUNICIPAL_BODIES: &[(&str, &str, char)] = &[
    ("南京市数据局", "Nanjing Municipal Data Bureau", ORGAN),
    ("南京市信息中心", "Nanjing Information Center", INSTITUTION),
    (
        "南京市政务服务管理办公室",
        "Nanjing Government Service Management Office",
        ORGAN,
    ),
    ("南京市公安局", "Nanjing Public Security Bureau", ORGAN),
    ("南京市民政局", "Nanjing Civil Affairs Bureau", ORGAN),
    (
        "南京市人力资源和社会保障局",
        "Nanjing Human Resources and Social Security Bureau",
        ORGAN,
    ),
    (
        "南京住房公积金管理中心",
        "Nanjing Housing Provident Fund Management Center",
        INSTITUTION,
    ),
    (
        "南京市规划和自然资源局",
        "Nanjing Planning and Natural Resources Bureau",
        ORGAN,
    ),
    (
        "南京市住房保障和房产局",
        "Nanjing Housing Security and Real Estate Bureau",
        ORGAN,
    ),
    ("南京市卫生健康委员会", "Nanjing Health Commission", ORGAN),
    (
        "南京市医疗保障局",
        "Nanjing Healthcare Security Administration",
        ORGAN,
    ),
    ("南京市教育局", "Nanjing Education Bureau", ORGAN),
    (
        "南京市市场监督管理局",
        "Nanjing Administration for Market Regulation",
        ORGAN,
    ),
    (
        "国家税务总局南京市税务局",
        "Nanjing Municipal Tax Service",
        ORGAN,
    ),
    ("南京市水务局", "Nanjing Water Affairs Bureau", ORGAN),
    ("南京市城市管理局", "Nanjing Urban Management Bureau", ORGAN),
    ("南京市交通运输局", "Nanjing Transport Bureau", ORGAN),
    (
        "南京市生态环境局",
        "Nanjing Ecology and Environment Bureau",
        ORGAN,
    ),
    (
        "南京市应急管理局",
        "Nanjing Emergency Management Bureau",
        ORGAN,
    ),
    ("南京市司法局", "Nanjing Justice Bureau", ORGAN),
    ("南京市财政局", "Nanjing Finance Bureau", ORGAN),
    ("南京市统计局", "Nanjing Statistics Bureau", ORGAN),
    (
        "南京市发展和改革委员会",
        "Nanjing Development and Reform Commission",
        ORGAN,
    ),
    (
        "南京市工业和信息化局",
        "Nanjing Industry and Information Technology Bureau",
        ORGAN,
    ),
    (
        "南京市科学技术局",
        "Nanjing Science and Technology Bureau",
        ORGAN,
    ),
    (
        "南京市农业农村局",
        "Nanjing Agriculture and Rural Affairs Bureau",
        ORGAN,
    ),
    ("南京市商务局", "Nanjing Commerce Bureau", ORGAN),
    (
        "南京市文化和旅游局",
        "Nanjing Culture and Tourism Bureau",
        ORGAN,
    ),
    (
        "南京市退役军人事务局",
        "Nanjing Veterans Affairs Bureau",
        ORGAN,
    ),
    ("南京市审计局", "Nanjing Audit Bureau", ORGAN),
    ("南京市体育局", "Nanjing Sports Bureau", ORGAN),
];

/// (Chinese suffix, English suffix) of the departments every district has.
const DISTRICT_DEPARTMENTS: &[(&str, &str)] = &[
    ("民政局", "Civil Affairs Bureau"),
    (
        "人力资源和社会保障局",
        "Human Resources and Social Security Bureau",
    ),
    ("卫生健康委员会", "Health Commission"),
    ("教育局", "Education Bureau"),
    ("市场监督管理局", "Administration for Market Regulation"),
    ("城市管理局", "Urban Management Bureau"),
    ("应急管理局", "Emergency Management Bureau"),
];

/// (Chinese name, English name, category, region, level) of the bodies above the city whose
/// entries Nanjing's platform mounts.
const UPPER_BODIES: &[(&str, &str, char, &str, Level)] = &[
    (
        "公安部",
        "Ministry of Public Security",
        ORGAN,
        "100000",
        Level::National,
    ),
    (
        "人力资源和社会保障部",
        "Ministry of Human Resources and Social Security",
        ORGAN,
        "100000",
        Level::National,
    ),
    (
        "国家市场监督管理总局",
        "State Administration for Market Regulation",
        ORGAN,
        "100000",
        Level::National,
    ),
    (
        "国家卫生健康委员会",
        "National Health Commission",
        ORGAN,
        "100000",
        Level::National,
    ),
    (
        "江苏省大数据管理中心",
        "Jiangsu Big Data Administration Center",
        INSTITUTION,
        "320000",
        Level::Provincial,
    ),
    (
        "江苏省公安厅",
        "Jiangsu Public Security Department",
        ORGAN,
        "320000",
        Level::Provincial,
    ),
    (
        "江苏省人力资源和社会保障厅",
        "Jiangsu Department of Human Resources and Social Security",
        ORGAN,
        "320000",
        Level::Provincial,
    ),
    (
        "江苏省市场监督管理局",
        "Jiangsu Administration for Market Regulation",
        ORGAN,
        "320000",
        Level::Provincial,
    ),
];

pub(crate) const NANJING: &str = "320100";

/// Nanjing's districts in code order, from the region table of `civitas-core`.
pub(crate) fn districts() -> Vec<RegionCode> {
    RegionCode::all()
        .filter(|region| region.region().parent == Some(NANJING))
        .collect()
}

/// The short English name of a district ("Xuanwu" of "Xuanwu District").
pub(crate) fn district_short_en(region: RegionCode) -> &'static str {
    let name_en = region.region().name_en;
    name_en.strip_suffix(" District").unwrap_or(name_en)
}

/// The 127 bodies of a synthetic Nanjing: 31 municipal bureaus (level municipal, region 320100),
/// the 11 district governments and 7 departments of each district (level district), 4 national
/// and 4 Jiangsu provincial bodies. Names are fixed; `seed` decides the GB 11714 organization
/// codes inside the unified social credit codes, which are valid and distinct.
pub fn organizations(seed: u64) -> Vec<Organization> {
    let mut random = Random::new(seed, 0x6f72_6773);
    let mut used_codes = HashSet::new();
    let mut organizations = Vec::with_capacity(127);
    let mut add = |random: &mut Random,
                   name: String,
                   name_en: String,
                   category: char,
                   region: RegionCode,
                   level: Level,
                   parent: Option<Uscc>| {
        let code = loop {
            let code = government_code(random, category, region);
            if used_codes.insert(code.clone()) {
                break code;
            }
        };
        organizations.push(Organization {
            code: code.clone(),
            name,
            name_en,
            level,
            region,
            parent,
        });
        code
    };
    let nanjing = RegionCode::parse(NANJING).expect("Nanjing is in the region table");
    for &(name, name_en, category) in MUNICIPAL_BODIES {
        add(
            &mut random,
            name.to_owned(),
            name_en.to_owned(),
            category,
            nanjing,
            Level::Municipal,
            None,
        );
    }
    for district in districts() {
        let region = district.region();
        let government = add(
            &mut random,
            format!("{}人民政府", region.name),
            format!("{} People's Government", region.name_en),
            ORGAN,
            district,
            Level::District,
            None,
        );
        for &(suffix, suffix_en) in DISTRICT_DEPARTMENTS {
            add(
                &mut random,
                format!("{}{suffix}", region.name),
                format!("{} {suffix_en}", region.name_en),
                ORGAN,
                district,
                Level::District,
                Some(government.clone()),
            );
        }
    }
    for &(name, name_en, category, region, level) in UPPER_BODIES {
        let region = RegionCode::parse(region).expect("upper bodies' regions are in the table");
        add(
            &mut random,
            name.to_owned(),
            name_en.to_owned(),
            category,
            region,
            level,
            None,
        );
    }
    debug_assert_eq!(organizations.len(), 127);
    organizations
}

/// A unified social credit code of a body registered by 机构编制 (authority 1). Government
/// bodies' organization codes are issued in the `MB` range; the other six characters are drawn
/// from the code's character set.
fn government_code(random: &mut Random, category: char, region: RegionCode) -> Uscc {
    const CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut organization = String::from("MB");
    for _ in 0..6 {
        organization.push(*random.pick(CHARSET) as char);
    }
    Uscc::from_parts('1', category, region.as_str(), &organization)
        .expect("the parts are drawn from the code's character set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanjing_has_127_distinct_bodies() {
        let organizations = organizations(1);
        assert_eq!(organizations.len(), 127);
        let codes: HashSet<_> = organizations.iter().map(|o| o.code.clone()).collect();
        assert_eq!(codes.len(), 127);
        for organization in &organizations {
            assert_eq!(
                organization.code.embedded_region(),
                organization.region.as_str()
            );
            Uscc::parse(organization.code.as_str()).unwrap();
        }
        let count = |level| organizations.iter().filter(|o| o.level == level).count();
        assert_eq!(count(Level::Municipal), 31);
        assert_eq!(count(Level::District), 88);
        assert_eq!(count(Level::National) + count(Level::Provincial), 8);
        let jiangning_urban = organizations
            .iter()
            .find(|o| o.name == "江宁区城市管理局")
            .unwrap();
        assert_eq!(jiangning_urban.region.as_str(), "320115");
        assert_eq!(
            jiangning_urban.name_en,
            "Jiangning District Urban Management Bureau"
        );
        assert!(jiangning_urban.parent.is_some());
    }

    #[test]
    fn every_body_has_a_department_in_the_vocabulary() {
        for organization in organizations(2) {
            assert!(
                crate::vocabulary::department_for(&organization.name).is_some(),
                "{}",
                organization.name
            );
        }
        let tag_of = |name: &str| {
            crate::vocabulary::DEPARTMENTS[crate::vocabulary::department_for(name).unwrap()].tag
        };
        assert_eq!(tag_of("江宁区人民政府"), "基层治理");
        assert_eq!(tag_of("江宁区民政局"), "民政");
        assert_eq!(tag_of("南京住房公积金管理中心"), "住房公积金");
        assert_eq!(tag_of("南京市住房保障和房产局"), "住房");
        assert_eq!(tag_of("南京市医疗保障局"), "医保");
        assert_eq!(tag_of("南京市工业和信息化局"), "工业和信息化");
        assert_eq!(tag_of("南京市信息中心"), "电子政务");
        assert_eq!(tag_of("江苏省大数据管理中心"), "公共数据");
    }

    #[test]
    fn seed_decides_codes_not_names() {
        let first = organizations(3);
        let second = organizations(4);
        assert_eq!(first, organizations(3));
        assert!(first.iter().zip(&second).all(|(a, b)| a.name == b.name));
        assert!(first.iter().zip(&second).any(|(a, b)| a.code != b.code));
    }
}
