//! What the tests share: one population of the size the demo city ships with, generated once.

use std::sync::{Arc, LazyLock};

use civitas_demo::Population;
use jiff::civil::Date;

pub const TODAY: Date = Date::constant(2026, 11, 15);
pub const SEED: u64 = 20_260_101;
pub const CITY_SIZE: usize = 100_000;

static CITY: LazyLock<Arc<Population>> = LazyLock::new(|| {
    Arc::new(Population::generate(SEED, CITY_SIZE, TODAY).expect("the demo city generates"))
});

/// The population of 100,000 citizens most tests look at.
pub fn city() -> Arc<Population> {
    Arc::clone(&CITY)
}
