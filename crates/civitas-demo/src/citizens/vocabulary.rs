//! The words synthetic citizens are made of: surnames, given-name characters, Nanjing's districts
//! and roads, other places, employers and hospitals. Citizens store indices into these tables so
//! that a citizen takes a few bytes and its text is built only when a service answers.

/// Common surnames with rough frequencies (per mille of the population), compound surnames last.
pub(crate) const SURNAMES: &[(&str, u32)] = &[
    ("王", 74),
    ("李", 72),
    ("张", 69),
    ("刘", 54),
    ("陈", 48),
    ("杨", 31),
    ("徐", 24),
    ("黄", 22),
    ("赵", 20),
    ("吴", 20),
    ("周", 19),
    ("朱", 17),
    ("孙", 15),
    ("马", 14),
    ("胡", 13),
    ("郭", 12),
    ("何", 12),
    ("高", 12),
    ("林", 11),
    ("罗", 10),
    ("郑", 9),
    ("梁", 9),
    ("谢", 8),
    ("宋", 8),
    ("唐", 8),
    ("许", 8),
    ("韩", 7),
    ("冯", 7),
    ("邓", 7),
    ("曹", 7),
    ("彭", 6),
    ("曾", 6),
    ("肖", 6),
    ("田", 6),
    ("董", 6),
    ("袁", 5),
    ("潘", 5),
    ("于", 5),
    ("蒋", 5),
    ("蔡", 5),
    ("余", 5),
    ("杜", 5),
    ("叶", 5),
    ("程", 5),
    ("苏", 4),
    ("魏", 4),
    ("吕", 4),
    ("丁", 4),
    ("任", 4),
    ("沈", 5),
    ("姚", 4),
    ("卢", 4),
    ("姜", 4),
    ("崔", 4),
    ("钟", 4),
    ("谭", 4),
    ("陆", 5),
    ("汪", 4),
    ("范", 4),
    ("金", 3),
    ("石", 3),
    ("廖", 3),
    ("贾", 3),
    ("夏", 3),
    ("韦", 3),
    ("付", 3),
    ("方", 3),
    ("白", 3),
    ("邹", 3),
    ("孟", 3),
    ("熊", 3),
    ("秦", 3),
    ("邱", 3),
    ("江", 3),
    ("尹", 3),
    ("薛", 3),
    ("闫", 3),
    ("段", 3),
    ("雷", 3),
    ("侯", 3),
    ("龙", 3),
    ("史", 3),
    ("陶", 2),
    ("黎", 2),
    ("贺", 2),
    ("顾", 3),
    ("毛", 2),
    ("郝", 2),
    ("龚", 2),
    ("邵", 2),
    ("万", 2),
    ("钱", 2),
    ("严", 2),
    ("武", 2),
    ("戴", 2),
    ("莫", 2),
    ("孔", 2),
    ("汤", 2),
    ("欧阳", 1),
    ("司马", 1),
    ("诸葛", 1),
    ("上官", 1),
    ("东方", 1),
    ("皇甫", 1),
    ("慕容", 1),
    ("令狐", 1),
    ("夏侯", 1),
    ("尉迟", 1),
];

/// Characters of given names. Fashions changed: people born before 1980 were often named 建国 or
/// 秀英, their grandchildren 梓轩 or 欣怡, so there is one part per generation and gender, in the
/// order of [`NameFashion`].
const GIVEN_NAME_CHARACTER_PARTS: [&str; 4] = [
    "国建华明军平志强伟东海林文德福生荣新庆春永忠发中成立兵宝金",
    "秀英兰芳玉珍桂凤华琴红梅霞丽萍燕敏云翠娟琳莉素洁慧淑静彩美",
    "浩宇轩子梓睿博涛杰磊鹏超晨阳俊峰辉斌凯旭昊铭泽然天一航嘉恒瑞",
    "欣怡佳悦雨诗涵萱梦晴瑶妍琪蕾薇月婷雪颖倩静思可馨彤语若安琳菲",
];

/// Which part of the given-name characters a name is drawn from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NameFashion {
    OlderMen = 0,
    OlderWomen = 1,
    YoungerMen = 2,
    YoungerWomen = 3,
}

struct GivenNameCharacters {
    characters: Vec<&'static str>,
    parts: [std::ops::Range<u16>; 4],
}

static GIVEN_NAME_CHARACTERS: std::sync::LazyLock<GivenNameCharacters> =
    std::sync::LazyLock::new(|| {
        let mut characters = Vec::new();
        let parts = GIVEN_NAME_CHARACTER_PARTS.map(|part| {
            let start = characters.len() as u16;
            characters.extend(
                part.char_indices()
                    .map(|(offset, character)| &part[offset..offset + character.len_utf8()]),
            );
            start..characters.len() as u16
        });
        GivenNameCharacters { characters, parts }
    });

/// The given-name character with global index `index`.
pub(crate) fn given_name_character(index: u16) -> &'static str {
    GIVEN_NAME_CHARACTERS.characters[usize::from(index)]
}

/// The global indices of the characters of one fashion.
pub(crate) fn given_name_characters_of(fashion: NameFashion) -> std::ops::Range<u16> {
    GIVEN_NAME_CHARACTERS.parts[fashion as usize].clone()
}

/// A district of Nanjing with a rough share of the registered population (in ten thousands) and
/// some of its roads.
pub(crate) struct District {
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) weight: u32,
    pub(crate) roads: &'static [&'static str],
}

/// Nanjing's 11 districts, as in civitas-core's region table.
pub(crate) const DISTRICTS: &[District] = &[
    District {
        code: "320102",
        name: "玄武区",
        weight: 54,
        roads: &[
            "中山路",
            "北京东路",
            "珠江路",
            "龙蟠路",
            "玄武大道",
            "太平北路",
        ],
    },
    District {
        code: "320104",
        name: "秦淮区",
        weight: 74,
        roads: &["中华路", "建康路", "白下路", "御道街", "光华路", "龙蟠中路"],
    },
    District {
        code: "320105",
        name: "建邺区",
        weight: 53,
        roads: &[
            "江东中路",
            "河西大街",
            "应天大街",
            "嘉陵江东街",
            "奥体大街",
            "庐山路",
        ],
    },
    District {
        code: "320106",
        name: "鼓楼区",
        weight: 94,
        roads: &[
            "中山北路",
            "北京西路",
            "汉中路",
            "湖南路",
            "广州路",
            "虎踞路",
        ],
    },
    District {
        code: "320111",
        name: "浦口区",
        weight: 72,
        roads: &[
            "浦口大道",
            "浦珠北路",
            "浦滨路",
            "江浦街",
            "天华路",
            "文德路",
        ],
    },
    District {
        code: "320113",
        name: "栖霞区",
        weight: 76,
        roads: &[
            "仙林大道",
            "文苑路",
            "马群街",
            "尧化街",
            "学海路",
            "燕子矶路",
        ],
    },
    District {
        code: "320114",
        name: "雨花台区",
        weight: 48,
        roads: &[
            "雨花西路",
            "软件大道",
            "宁南大道",
            "龙藏大道",
            "铁心桥街",
            "凤台南路",
        ],
    },
    District {
        code: "320115",
        name: "江宁区",
        weight: 150,
        roads: &[
            "双龙大道",
            "天元东路",
            "胜太路",
            "竹山路",
            "秣陵路",
            "佛城西路",
        ],
    },
    District {
        code: "320116",
        name: "六合区",
        weight: 66,
        roads: &["雄州路", "龙津路", "延安路", "冶山路", "大厂街", "葛中路"],
    },
    District {
        code: "320117",
        name: "溧水区",
        weight: 44,
        roads: &[
            "珍珠路",
            "通济街",
            "天生桥大道",
            "交通路",
            "秦淮大道",
            "中山东路",
        ],
    },
    District {
        code: "320118",
        name: "高淳区",
        weight: 44,
        roads: &["淳溪路", "宝塔路", "镇兴路", "北岭路", "双湖路", "丹阳湖路"],
    },
];

/// County-level regions outside Nanjing where citizens who moved to the city were born, with
/// rough weights: mostly the rest of Jiangsu and the neighbouring provinces.
pub(crate) const BIRTH_REGIONS_ELSEWHERE: &[(&str, u32)] = &[
    ("320211", 5), // 无锡市滨湖区
    ("320303", 6), // 徐州市云龙区
    ("320505", 5), // 苏州市虎丘区
    ("320830", 6), // 淮安市盱眙县
    ("320923", 6), // 盐城市阜宁县
    ("321023", 6), // 扬州市宝应县
    ("321322", 7), // 宿迁市沭阳县
    ("340104", 6), // 合肥市蜀山区
    ("341122", 6), // 滁州市来安县
    ("341302", 6), // 宿州市埇桥区
    ("410102", 4), // 郑州市中原区
    ("411323", 4), // 南阳市淅川县
    ("370102", 3), // 济南市历下区
    ("330106", 3), // 杭州市西湖区
    ("360102", 3), // 南昌市东湖区
    ("420106", 3), // 武汉市武昌区
    ("430104", 2), // 长沙市岳麓区
    ("510107", 2), // 成都市武侯区
    ("130102", 2), // 石家庄市长安区
    ("230103", 1), // 哈尔滨市南岗区
];

/// A place outside Nanjing where a citizen may own a home: its region code from civitas-core's
/// region table, the abbreviation real-estate certificates start with, and its address prefix.
pub(crate) struct PlaceElsewhere {
    pub(crate) region: &'static str,
    pub(crate) certificate_prefix: &'static str,
    pub(crate) city: &'static str,
    pub(crate) address_prefix: &'static str,
}

pub(crate) const PLACES_ELSEWHERE: &[PlaceElsewhere] = &[
    PlaceElsewhere {
        region: "320200",
        certificate_prefix: "苏",
        city: "无锡市",
        address_prefix: "江苏省无锡市",
    },
    PlaceElsewhere {
        region: "320300",
        certificate_prefix: "苏",
        city: "徐州市",
        address_prefix: "江苏省徐州市",
    },
    PlaceElsewhere {
        region: "320500",
        certificate_prefix: "苏",
        city: "苏州市",
        address_prefix: "江苏省苏州市",
    },
    PlaceElsewhere {
        region: "321000",
        certificate_prefix: "苏",
        city: "扬州市",
        address_prefix: "江苏省扬州市",
    },
    PlaceElsewhere {
        region: "321100",
        certificate_prefix: "苏",
        city: "镇江市",
        address_prefix: "江苏省镇江市",
    },
    PlaceElsewhere {
        region: "310000",
        certificate_prefix: "沪",
        city: "上海市",
        address_prefix: "上海市",
    },
    PlaceElsewhere {
        region: "110000",
        certificate_prefix: "京",
        city: "北京市",
        address_prefix: "北京市",
    },
];

/// Road names found in most Chinese cities, for addresses outside Nanjing.
pub(crate) const COMMON_ROADS: &[&str] = &[
    "人民路",
    "解放路",
    "建设路",
    "中山路",
    "和平路",
    "新华路",
    "长江路",
    "文化路",
    "青年路",
    "胜利路",
];

/// Employer names are 南京 + a trade name + a line of business + a legal form.
pub(crate) const TRADE_NAMES: &[&str] = &[
    "华泰",
    "金陵",
    "紫金",
    "鼎信",
    "恒达",
    "新城",
    "汇通",
    "锦程",
    "苏建",
    "宁远",
    "博瑞",
    "天启",
    "中盛",
    "瑞丰",
    "嘉禾",
    "永安",
    "东方",
    "长风",
    "钟山",
    "秦淮",
    "玄武",
    "明德",
    "科宁",
    "聚源",
    "宏图",
    "正元",
    "百川",
    "云帆",
    "远景",
    "同创",
    "致远",
    "合力",
    "三江",
    "五洲",
    "恒信",
    "华瑞",
    "新希望",
    "国信",
    "中电",
    "润和",
];
pub(crate) const BUSINESS_LINES: &[&str] = &[
    "科技",
    "软件",
    "信息技术",
    "建设工程",
    "物流",
    "医药",
    "商贸",
    "电子",
    "餐饮管理",
    "物业管理",
    "教育咨询",
    "汽车销售",
    "机械制造",
    "文化传媒",
    "环保科技",
    "生物技术",
];
pub(crate) const LEGAL_FORMS: &[&str] = &["有限公司", "股份有限公司", "有限责任公司"];

/// Number of distinct employer names.
pub(crate) const EMPLOYER_COUNT: usize =
    TRADE_NAMES.len() * BUSINESS_LINES.len() * LEGAL_FORMS.len();

/// Maternity hospitals that issue birth certificates.
pub(crate) const HOSPITALS: &[&str] = &[
    "南京市妇幼保健院",
    "江苏省人民医院",
    "南京鼓楼医院",
    "江苏省妇幼保健院",
    "南京市第一医院",
    "东南大学附属中大医院",
    "南京市江宁医院",
    "南京市浦口医院",
    "南京市六合区人民医院",
    "南京市溧水区人民医院",
    "南京市高淳人民医院",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The services write vocabulary into JSON strings without escaping it.
    #[test]
    fn words_need_no_escaping_in_json() {
        let mut words: Vec<&str> = SURNAMES.iter().map(|&(surname, _)| surname).collect();
        words.extend(GIVEN_NAME_CHARACTER_PARTS);
        for district in DISTRICTS {
            words.push(district.name);
            words.extend(district.roads);
        }
        for place in PLACES_ELSEWHERE {
            words.extend([place.city, place.address_prefix, place.certificate_prefix]);
        }
        words.extend(COMMON_ROADS);
        words.extend(TRADE_NAMES);
        words.extend(BUSINESS_LINES);
        words.extend(LEGAL_FORMS);
        words.extend(HOSPITALS);
        for word in words {
            assert!(
                !word
                    .chars()
                    .any(|c| c == '"' || c == '\\' || c.is_control()),
                "{word:?}"
            );
        }
    }

    #[test]
    fn given_name_parts_hold_distinct_characters() {
        for fashion in [
            NameFashion::OlderMen,
            NameFashion::OlderWomen,
            NameFashion::YoungerMen,
            NameFashion::YoungerWomen,
        ] {
            let range = given_name_characters_of(fashion);
            let characters: std::collections::HashSet<&str> =
                range.clone().map(given_name_character).collect();
            assert_eq!(characters.len(), range.len());
            assert!(range.len() >= 25);
        }
        assert!(DISTRICTS.iter().all(|district| district.roads.len() <= 255));
    }
}
