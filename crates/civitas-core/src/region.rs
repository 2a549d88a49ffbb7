//! GB/T 2260 administrative division codes, from the table shipped in `data/regions.csv`: the
//! central level, every provincial-level division, Jiangsu's prefecture-level cities and Nanjing's
//! districts.

use std::sync::LazyLock;

use crate::{InvalidValue, registry::Level, string_newtype_serde};

/// One row of the region table.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub code: &'static str,
    pub name: &'static str,
    pub name_en: &'static str,
    pub level: Level,
    pub parent: Option<&'static str>,
    /// Approximate centroid (latitude, longitude), known for Nanjing and its districts.
    pub centroid: Option<(f64, f64)>,
}

static REGIONS: LazyLock<Vec<Region>> = LazyLock::new(|| {
    let mut regions: Vec<Region> = include_str!("../data/regions.csv")
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&'static str> = line.split(',').collect();
            assert_eq!(fields.len(), 7, "regions.csv: bad line {line:?}");
            let centroid = match (fields[5].parse(), fields[6].parse()) {
                (Ok(lat), Ok(lon)) => Some((lat, lon)),
                _ => None,
            };
            Region {
                code: fields[0],
                name: fields[1],
                name_en: fields[2],
                level: Level::parse(fields[3]).expect("regions.csv: bad level"),
                parent: Some(fields[4]).filter(|parent| !parent.is_empty()),
                centroid,
            }
        })
        .collect();
    regions.sort_by_key(|region| region.code);
    regions
});

/// A GB/T 2260 region code that is in the shipped table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode(&'static str);

impl RegionCode {
    pub fn parse(text: &str) -> Result<RegionCode, InvalidValue> {
        if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue::new(format!(
                "{text:?} is not a GB/T 2260 region code: it has 6 digits"
            )));
        }
        REGIONS
            .binary_search_by_key(&text, |region| region.code)
            .map(|index| RegionCode(REGIONS[index].code))
            .map_err(|_| InvalidValue::new(format!("unknown GB/T 2260 region code {text}")))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    pub fn region(&self) -> &'static Region {
        let index = REGIONS
            .binary_search_by_key(&self.0, |region| region.code)
            .expect("a RegionCode is always in the table");
        &REGIONS[index]
    }

    /// Whether `self` is `ancestor` or lies inside it (Xuanwu district lies inside Nanjing, which
    /// lies inside Jiangsu).
    pub fn is_within(&self, ancestor: RegionCode) -> bool {
        let mut current = Some(self.0);
        while let Some(code) = current {
            if code == ancestor.0 {
                return true;
            }
            current = RegionCode::parse(code).ok().and_then(|r| r.region().parent);
        }
        false
    }

    pub fn all() -> impl Iterator<Item = RegionCode> {
        REGIONS.iter().map(|region| RegionCode(region.code))
    }
}

string_newtype_serde!(RegionCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_what_the_registry_needs() {
        let provinces = RegionCode::all()
            .filter(|r| r.region().level == Level::Provincial)
            .count();
        assert_eq!(provinces, 34);
        let nanjing = RegionCode::parse("320100").unwrap();
        let districts: Vec<_> = RegionCode::all()
            .filter(|r| r.region().parent == Some("320100"))
            .collect();
        assert_eq!(districts.len(), 11);
        assert!(districts.iter().all(|d| d.is_within(nanjing)));
        assert!(districts.iter().all(|d| d.region().centroid.is_some()));
        let gaochun = RegionCode::parse("320118").unwrap();
        assert_eq!(gaochun.region().name, "高淳区");
        assert!(gaochun.is_within(RegionCode::parse("320000").unwrap()));
        assert!(!gaochun.is_within(RegionCode::parse("310000").unwrap()));
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        assert!(
            RegionCode::parse("320199")
                .unwrap_err()
                .message
                .contains("unknown")
        );
        assert!(
            RegionCode::parse("32010")
                .unwrap_err()
                .message
                .contains("6 digits")
        );
    }
}
