//! Synthetic catalog entries ("directories") of a Nanjing-like city.
//!
//! Every draft passes [`ResourceDraft::validate`]. Codes are `{provider region}-{classification}-
//! {sequence}` with a sequence per region and classification, so they are unique within one
//! generated catalog.

use std::collections::HashMap;

use civitas_core::catalog::{
    ClassificationCode, InformationItem, OpenType, ResourceCode, ResourceDraft, ResourceKind,
    Sensitivity, Sharing, SharingMethod, SharingType, UpdateCycle, guess_mask,
};
use civitas_core::registry::Level;
use civitas_core::{Code, DeviceCode, NodeCode, RegionCode};

use crate::organizations::{self, Organization};
use crate::random::Random;
use crate::vocabulary::{self, DEPARTMENTS, Department, ItemSpec, Subject, Topic};

/// How many entries of each kind to generate, and who publishes them.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub datasets: u64,
    pub interfaces: u64,
    pub videos: u64,
    pub files: u64,
    /// The publishing bodies. Municipal and district bodies publish the node's own entries;
    /// national and provincial bodies publish the entries mounted from their platforms.
    pub providers: Vec<Organization>,
    /// Share of entries, in per mille, mounted from the national (`cn`) and provincial (`cn-js`)
    /// platforms; taken only when such providers are in `providers`.
    pub mounted_per_mille: u32,
}

/// Directories on Nanjing's platform: 172,654 of which 920 datasets and 77 interfaces.
pub const NANJING_DIRECTORIES: u64 = 172_654;
const NANJING_DATASETS: u64 = 920;
const NANJING_INTERFACES: u64 = 77;

impl CatalogConfig {
    /// Nanjing's catalog: 172,654 directories, 920 datasets, 77 interfaces, the rest files, 3% of
    /// them mounted from upper platforms.
    pub fn nanjing(providers: Vec<Organization>) -> CatalogConfig {
        CatalogConfig::scaled(NANJING_DIRECTORIES, providers)
    }

    /// A catalog of `total` entries with Nanjing's mix of kinds.
    pub fn scaled(total: u64, providers: Vec<Organization>) -> CatalogConfig {
        let datasets = total * NANJING_DATASETS / NANJING_DIRECTORIES;
        let interfaces = total * NANJING_INTERFACES / NANJING_DIRECTORIES;
        CatalogConfig {
            datasets,
            interfaces,
            videos: 0,
            files: total - datasets - interfaces,
            providers,
            mounted_per_mille: 30,
        }
    }

    pub fn total(&self) -> u64 {
        self.datasets + self.interfaces + self.videos + self.files
    }
}

/// The drafts of a synthetic catalog, deterministic from `seed`: the same seed and configuration
/// give the same drafts in the same order on every run and platform.
///
/// # Panics
///
/// If `config.providers` is empty.
pub fn directories(seed: u64, config: CatalogConfig) -> Directories {
    assert!(
        !config.providers.is_empty(),
        "a catalog needs at least one provider"
    );
    let plans: Vec<ProviderPlan> = config.providers.iter().map(ProviderPlan::new).collect();
    let local_weights = plans
        .iter()
        .map(|plan| {
            if plan.mounted_from.is_none() {
                plan.weight
            } else {
                0
            }
        })
        .collect::<Vec<_>>();
    let mounted_weights = plans
        .iter()
        .map(|plan| {
            if plan.mounted_from.is_some() {
                plan.weight
            } else {
                0
            }
        })
        .collect::<Vec<_>>();
    let any_local = local_weights.iter().any(|&weight| weight > 0);
    let any_mounted = mounted_weights.iter().any(|&weight| weight > 0);
    let classifications = Classifications::new();
    Directories {
        random: Random::new(seed, 0x6361_7461),
        remaining: [
            config.datasets,
            config.interfaces,
            config.videos,
            config.files,
        ],
        mounted_per_mille: match (any_local, any_mounted) {
            (true, true) => config.mounted_per_mille.min(1000),
            (true, false) => 0,
            (false, _) => 1000,
        },
        plans,
        local_weights,
        mounted_weights,
        sequences: HashMap::new(),
        classifications,
        districts: organizations::districts(),
        cameras: HashMap::new(),
    }
}

const KINDS: [ResourceKind; 4] = [
    ResourceKind::Dataset,
    ResourceKind::Interface,
    ResourceKind::Video,
    ResourceKind::File,
];

/// What the generator works out once per provider.
struct ProviderPlan {
    name: String,
    name_en: String,
    code: civitas_core::Uscc,
    region: RegionCode,
    level: Level,
    department: &'static Department,
    weight: u32,
    system: Code,
    mounted_from: Option<NodeCode>,
    last_code: Option<ResourceCode>,
}

impl ProviderPlan {
    fn new(organization: &Organization) -> ProviderPlan {
        let department = &DEPARTMENTS[vocabulary::department_for(&organization.name)
            .unwrap_or(vocabulary::GENERAL_GOVERNMENT)];
        let level_factor = match organization.level {
            Level::Municipal => 4,
            Level::District | Level::Street => 1,
            Level::National | Level::Provincial => 2,
        };
        let mounted_from = match organization.level {
            Level::National => Some("cn"),
            Level::Provincial => Some("cn-js"),
            _ => None,
        }
        .map(|node| NodeCode::parse(node).expect("node codes are valid"));
        ProviderPlan {
            name: organization.name.clone(),
            name_en: organization.name_en.clone(),
            code: organization.code.clone(),
            region: organization.region,
            level: organization.level,
            department,
            weight: department.weight * level_factor,
            system: provider_system(organization),
            mounted_from,
            last_code: None,
        }
    }
}

/// The system through which `organization` publishes its interfaces (and some datasets):
/// `{department system}`, prefixed with the district for district bodies. The registry must hold
/// it before the generated drafts are written.
pub fn provider_system(organization: &Organization) -> Code {
    let department = &DEPARTMENTS
        [vocabulary::department_for(&organization.name).unwrap_or(vocabulary::GENERAL_GOVERNMENT)];
    let system = match organization.level {
        Level::District | Level::Street => format!(
            "{}-{}",
            organizations::district_short_en(organization.region).to_ascii_lowercase(),
            department.system
        ),
        _ => department.system.to_owned(),
    };
    Code::parse(&system).expect("system codes are valid")
}

/// The guide's classifications, parsed once.
struct Classifications {
    department: Vec<ClassificationCode>,
}

impl Classifications {
    fn new() -> Classifications {
        Classifications {
            department: (1..=20)
                .map(|number| {
                    ClassificationCode::parse(&format!("D{number:02}"))
                        .expect("D01 to D20 are valid")
                })
                .collect(),
        }
    }
}

/// The iterator [`directories`] returns.
pub struct Directories {
    random: Random,
    /// Entries still to generate, by kind in the order of [`KINDS`].
    remaining: [u64; 4],
    mounted_per_mille: u32,
    plans: Vec<ProviderPlan>,
    local_weights: Vec<u32>,
    mounted_weights: Vec<u32>,
    sequences: HashMap<(RegionCode, ClassificationCode), u32>,
    classifications: Classifications,
    districts: Vec<RegionCode>,
    /// The last camera serial number used in each district.
    cameras: HashMap<RegionCode, u32>,
}

impl Iterator for Directories {
    type Item = ResourceDraft;

    fn next(&mut self) -> Option<ResourceDraft> {
        let total: u64 = self.remaining.iter().sum();
        if total == 0 {
            return None;
        }
        // Drawing each kind with probability remaining / total gives exactly the configured
        // counts, evenly mixed, without keeping a shuffled list.
        let mut ticket = self.random.below(total);
        let mut kind_index = 0;
        while ticket >= self.remaining[kind_index] {
            ticket -= self.remaining[kind_index];
            kind_index += 1;
        }
        self.remaining[kind_index] -= 1;
        Some(self.draft(KINDS[kind_index]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let total = self.remaining.iter().sum::<u64>() as usize;
        (total, Some(total))
    }
}

impl ExactSizeIterator for Directories {}

/// The texts a name and a summary are built from.
struct Naming<'a> {
    region_zh: &'a str,
    region_en: String,
    suffix_zh: &'static str,
    suffix_en: &'static str,
}

impl Directories {
    fn draft(&mut self, kind: ResourceKind) -> ResourceDraft {
        let mounted = self.random.chance(self.mounted_per_mille);
        let weights = if mounted {
            &self.mounted_weights
        } else {
            &self.local_weights
        };
        let plan_index = self.random.weighted(weights);
        let department = self.plans[plan_index].department;
        let topic = self.random.pick(department.topics);
        let classification = self.classification(topic);
        let region = self.plans[plan_index].region;
        let sequence = self.sequences.entry((region, classification)).or_insert(0);
        *sequence += 1;
        debug_assert!(*sequence <= 999_999, "sequence numbers have six digits");
        let code = ResourceCode::new(region, classification, *sequence);

        let naming = self.naming(plan_index, topic);
        let (name, name_en) = self.names(plan_index, topic, kind, &naming);
        let items = self.items(topic, kind);
        let has_personal = items
            .iter()
            .any(|item| item.sensitivity == Sensitivity::Personal);
        let update_cycle = self.update_cycle(topic.subject, kind);
        let summary = self.summary(plan_index, topic, &naming, &items, update_cycle);
        let sharing = self.sharing(kind);
        let open_type = self.open_type(has_personal, sharing.sharing_type);
        let tags = self.tags(plan_index, topic, classification, &naming);
        let format = self.format(kind);
        let published_on = self.random.chance(950).then(|| {
            let year = 2017 + self.random.below(9) as i16;
            let month = 1 + self.random.below(12) as i8;
            let day = 1 + self.random.below(28) as i8;
            jiff::civil::date(year, month, day)
        });
        let plan = &self.plans[plan_index];
        let related = match &plan.last_code {
            Some(previous) if self.random.chance(100) => vec![previous.clone()],
            _ => Vec::new(),
        };
        let provider_system = match kind {
            ResourceKind::Interface => Some(plan.system.clone()),
            ResourceKind::Dataset if self.random.chance(300) => Some(plan.system.clone()),
            _ => None,
        };
        let device = (kind == ResourceKind::Video).then(|| {
            let camera_type = if self.random.chance(500) { 131 } else { 132 };
            // Cameras stand in districts: a body above them has its cameras spread over all.
            let camera_region = if self.districts.contains(&region) {
                region
            } else {
                self.districts[self.random.index(self.districts.len())]
            };
            // Serial numbers count up per district, so every camera's code is distinct.
            let serial = self.cameras.entry(camera_region).or_insert(0);
            *serial += 1;
            DeviceCode::parse(&format!(
                "{}0000{camera_type}0{:06}",
                camera_region.as_str(),
                *serial
            ))
            .expect("the device code has 20 digits")
        });
        let draft = ResourceDraft {
            code: code.clone(),
            kind,
            classification,
            name,
            name_en: Some(name_en),
            provider: plan.code.clone(),
            provider_system,
            summary,
            format,
            items,
            sharing,
            open_type,
            update_cycle,
            published_on,
            related,
            tags,
            origin_node: plan.mounted_from.clone(),
            device,
        };
        self.plans[plan_index].last_code = Some(code);
        debug_assert_eq!(draft.validate(), Ok(()));
        draft
    }

    /// Base 20%, theme 35% and department 45%, as far as the topic fits the guide's categories.
    fn classification(&mut self, topic: &Topic) -> ClassificationCode {
        let roll = self.random.below(100);
        let wanted: &[char] = match roll {
            0..20 => &['B', 'T'],
            20..55 => &['T', 'B'],
            _ => &[],
        };
        for &letter in wanted {
            let fitting: Vec<&str> = topic
                .classifications
                .iter()
                .copied()
                .filter(|code| code.starts_with(letter))
                .collect();
            if !fitting.is_empty() {
                let code = *self.random.pick(&fitting);
                return ClassificationCode::parse(code).expect("vocabulary codes are valid");
            }
        }
        *self.random.pick(&self.classifications.department)
    }

    fn naming(&mut self, plan_index: usize, topic: &Topic) -> Naming<'static> {
        let plan = &self.plans[plan_index];
        let (region_zh, region_en) = match plan.level {
            // A municipal body's entries often cover one district.
            Level::Municipal if self.random.chance(550) => {
                let district = *self.random.pick(&self.districts);
                (district.region().name, district.region().name_en.to_owned())
            }
            Level::National => ("全国", "National".to_owned()),
            _ => (
                plan.region.region().name,
                plan.region.region().name_en.to_owned(),
            ),
        };
        let &(suffix_zh, suffix_en) = self.random.pick(topic.subject.suffixes());
        Naming {
            region_zh,
            region_en,
            suffix_zh,
            suffix_en,
        }
    }

    fn names(
        &mut self,
        plan_index: usize,
        topic: &Topic,
        kind: ResourceKind,
        naming: &Naming,
    ) -> (String, String) {
        let plan = &self.plans[plan_index];
        let (suffix_zh, suffix_en) = if kind == ResourceKind::Video {
            ("视频监控", "Video Surveillance")
        } else {
            (naming.suffix_zh, naming.suffix_en)
        };
        let topic_zh = topic.zh;
        let topic_en = topic.en;
        match self.random.weighted(&[35, 35, 15, 15]) {
            0 => (
                format!("{}{topic_zh}{suffix_zh}", plan.name),
                format!("{} {topic_en} {suffix_en}", plan.name_en),
            ),
            1 => (
                format!("{}{topic_zh}{suffix_zh}", naming.region_zh),
                format!("{} {topic_en} {suffix_en}", naming.region_en),
            ),
            2 => {
                let year = 2017 + self.random.below(9);
                (
                    format!("{year}年{}{topic_zh}{suffix_zh}", naming.region_zh),
                    format!("{} {topic_en} {suffix_en} {year}", naming.region_en),
                )
            }
            _ => (
                format!("{topic_zh}{suffix_zh}"),
                format!("{topic_en} {suffix_en}"),
            ),
        }
    }

    fn items(&mut self, topic: &Topic, kind: ResourceKind) -> Vec<InformationItem> {
        let wants_items = match kind {
            ResourceKind::Dataset | ResourceKind::Interface => true,
            ResourceKind::File => self.random.chance(850),
            ResourceKind::Video => false,
        };
        if !wants_items {
            return Vec::new();
        }
        let (subject_items, core_count) = topic.subject.items();
        let mut chosen: Vec<&ItemSpec> = subject_items[..core_count].iter().collect();
        let optional = &subject_items[core_count..];
        let optional_count = self.random.index(optional.len() + 1);
        chosen.extend(
            self.random
                .subset(optional.len(), optional_count)
                .into_iter()
                .map(|index| &optional[index]),
        );
        // At least two topic items (all of them if there are fewer), at most all.
        let least = topic.items.len().min(2);
        let topic_count = least + self.random.index(topic.items.len() - least + 1);
        chosen.extend(
            self.random
                .subset(topic.items.len(), topic_count)
                .into_iter()
                .map(|index| &topic.items[index]),
        );
        for trailing in vocabulary::TRAILING_ITEMS {
            if self.random.chance(400) {
                chosen.push(trailing);
            }
        }
        let mut items: Vec<InformationItem> = Vec::with_capacity(chosen.len());
        for spec in chosen {
            // Topic items may repeat a common item of the subject; the first one stays.
            if items.iter().any(|item| item.code == spec.code) {
                continue;
            }
            let mask = (spec.sensitivity == Sensitivity::Personal && self.random.chance(300))
                .then(|| guess_mask(spec.code, spec.name));
            items.push(InformationItem {
                code: spec.code.to_owned(),
                name: spec.name.to_owned(),
                data_type: spec.data_type,
                sensitivity: spec.sensitivity,
                mask,
            });
        }
        items
    }

    fn update_cycle(&mut self, subject: Subject, kind: ResourceKind) -> UpdateCycle {
        use UpdateCycle::*;
        const CYCLES: [UpdateCycle; 8] = [
            Realtime, Daily, Weekly, Monthly, Quarterly, HalfYearly, Yearly, Irregular,
        ];
        let weights: [u32; 8] = match (kind, subject) {
            (ResourceKind::Interface | ResourceKind::Video, _) => [60, 30, 0, 5, 0, 0, 0, 5],
            (_, Subject::Statistic) => [0, 2, 3, 30, 25, 10, 25, 5],
            (_, Subject::Event) => [15, 45, 10, 15, 5, 0, 0, 10],
            (_, Subject::Place) => [10, 20, 5, 20, 15, 5, 15, 10],
            (_, Subject::Person | Subject::Enterprise) => [5, 40, 10, 25, 5, 2, 5, 8],
        };
        CYCLES[self.random.weighted(&weights)]
    }

    fn summary(
        &mut self,
        plan_index: usize,
        topic: &Topic,
        naming: &Naming,
        items: &[InformationItem],
        cycle: UpdateCycle,
    ) -> String {
        let provider = &self.plans[plan_index].name;
        let cycle_zh = vocabulary::cycle_zh(cycle);
        let listed: Vec<&str> = items
            .iter()
            .filter(|item| !item.code.ends_with("_at") && item.code != "remark")
            .take(3)
            .map(|item| item.name.as_str())
            .collect();
        let region = naming.region_zh;
        let topic_zh = topic.zh;
        let suffix = naming.suffix_zh;
        let mut summary = match (self.random.below(3), listed.is_empty()) {
            (0, false) => {
                let verb = self.random.pick(vocabulary::VERBS);
                format!(
                    "{provider}{verb}的{region}{topic_zh}{suffix}，包括{}等{}个信息项，{cycle_zh}更新。",
                    listed.join("、"),
                    items.len()
                )
            }
            (1, false) => format!(
                "记录{region}{topic_zh}相关{}的{}等信息。",
                topic.subject.noun(),
                listed.join("、")
            ),
            _ => format!(
                "本资源提供{region}{topic_zh}{suffix}，数据来源于{provider}，{cycle_zh}更新。"
            ),
        };
        if self.random.chance(500) {
            let usage = vocabulary::USES[self.random.index(vocabulary::USES.len())];
            summary.push_str(usage);
        }
        summary
    }

    /// 45% unconditional, 45% conditional with conditions, 10% not shared.
    fn sharing(&mut self, kind: ResourceKind) -> Sharing {
        let sharing_type = match self.random.below(20) {
            0..9 => SharingType::Unconditional,
            9..18 => SharingType::Conditional,
            _ => SharingType::None,
        };
        if sharing_type == SharingType::None {
            return Sharing {
                sharing_type,
                conditions: None,
                method: None,
            };
        }
        let method = match kind {
            ResourceKind::Interface => SharingMethod::Interface,
            ResourceKind::Dataset if self.random.chance(500) => SharingMethod::Interface,
            ResourceKind::Dataset => SharingMethod::Exchange,
            ResourceKind::Video => SharingMethod::Video,
            ResourceKind::File => SharingMethod::Download,
        };
        let conditions = (sharing_type == SharingType::Conditional)
            .then(|| (*self.random.pick(vocabulary::CONDITIONS)).to_owned());
        Sharing {
            sharing_type,
            conditions,
            method: Some(method),
        }
    }

    fn open_type(&mut self, has_personal: bool, sharing_type: SharingType) -> OpenType {
        if sharing_type == SharingType::None {
            return OpenType::Closed;
        }
        let weights: [u32; 3] = if has_personal {
            [5, 25, 70]
        } else {
            [40, 30, 30]
        };
        [OpenType::Open, OpenType::Conditional, OpenType::Closed][self.random.weighted(&weights)]
    }

    fn tags(
        &mut self,
        plan_index: usize,
        topic: &Topic,
        classification: ClassificationCode,
        naming: &Naming,
    ) -> Vec<String> {
        let mut tags: Vec<String> = Vec::with_capacity(5);
        let count = 1 + self.random.index(topic.tags.len().max(1));
        for index in self.random.subset(topic.tags.len(), count) {
            tags.push(topic.tags[index].to_owned());
        }
        let department_tag = self.plans[plan_index].department.tag;
        if self.random.chance(600) {
            tags.push(department_tag.to_owned());
        }
        if naming.region_zh.ends_with('区') && self.random.chance(300) {
            tags.push(naming.region_zh.to_owned());
        }
        if let Some(category) = classification.category()
            && self.random.chance(300)
        {
            tags.push(category.name.to_owned());
        }
        let mut unique = Vec::with_capacity(tags.len());
        for tag in tags {
            if !unique.contains(&tag) {
                unique.push(tag);
            }
        }
        unique
    }

    fn format(&mut self, kind: ResourceKind) -> String {
        let format = match kind {
            ResourceKind::Dataset => *self.random.pick(&["json", "json", "csv", "csv", "xlsx"]),
            ResourceKind::Interface => "api",
            ResourceKind::Video => "stream",
            ResourceKind::File => {
                ["xlsx", "csv", "pdf", "docx", "ofd"][self.random.weighted(&[50, 20, 15, 10, 5])]
            }
        };
        format.to_owned()
    }
}

/// Words people search the generated catalog with: Chinese topic names, tags and district names,
/// and English words of the topic names (without stop words), each list sorted and free of
/// duplicates. Benchmarks draw their queries from these.
pub fn search_vocabulary() -> SearchVocabulary {
    let mut chinese: Vec<&'static str> = Vec::new();
    let mut english: Vec<String> = Vec::new();
    for department in DEPARTMENTS {
        chinese.push(department.tag);
        for topic in department.topics {
            chinese.push(topic.zh);
            chinese.extend(topic.tags.iter().copied());
            english.extend(
                topic
                    .en
                    .split([' ', '-'])
                    .filter(|word| word.len() > 3 && !matches!(*word, "from" | "with" | "above"))
                    .map(str::to_ascii_lowercase),
            );
        }
    }
    chinese.extend(
        organizations::districts()
            .into_iter()
            .map(|district| district.region().name),
    );
    chinese.sort_unstable();
    chinese.dedup();
    english.sort_unstable();
    english.dedup();
    SearchVocabulary { chinese, english }
}

/// See [`search_vocabulary`].
#[derive(Debug, Clone)]
pub struct SearchVocabulary {
    pub chinese: Vec<&'static str>,
    pub english: Vec<String>,
}
