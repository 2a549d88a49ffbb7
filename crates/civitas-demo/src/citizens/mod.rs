//! Synthetic citizens of the demo city: identities, households, social insurance, housing fund
//! accounts, real estate, the elderly care register, marriages and birth certificates, generated
//! deterministically from a seed, a count and the date the city takes as today.
//!
//! Pure: no I/O, no clock, no global randomness. Records keep indices into the vocabulary tables
//! and bit masks of months instead of text, so that 100,000 citizens take about 15 MB; text is
//! built only when it is asked for (`name`, `address`, …).

mod generate;
mod scenarios;
mod vocabulary;

use std::fmt;

use jiff::civil::Date;

pub use scenarios::{Example, Examples, Judgement, Outcome, OutcomeCounts, Scenario};

use vocabulary::{
    BUSINESS_LINES, COMMON_ROADS, DISTRICTS, HOSPITALS, LEGAL_FORMS, PLACES_ELSEWHERE, SURNAMES,
    TRADE_NAMES,
};

/// The largest population a demo city is generated with. The numbers derived from a record's
/// position (household, account and certificate numbers) are unique only below it.
pub const MAX_CITIZENS: usize = 5_000_000;

/// The earliest birth date of a synthetic citizen.
pub const EARLIEST_BIRTH_DATE: Date = Date::constant(1930, 1, 1);

/// Why a population cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    #[error("a demo city holds at most {MAX_CITIZENS} citizens, {requested} were asked for")]
    TooManyCitizens { requested: usize },
    #[error("today must lie between 1931-01-01 and 2099-12-31, got {today}")]
    TodayOutOfRange { today: Date },
}

/// Gender as the 17th digit of the ID number gives it: odd for men, even for women.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }
}

/// The status of an identity in the population register (人口库).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityStatus {
    Normal,
    Deceased,
    Cancelled,
}

impl IdentityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Normal => "normal",
            IdentityStatus::Deceased => "deceased",
            IdentityStatus::Cancelled => "cancelled",
        }
    }
}

/// A person's relation to the head of their household (与户主关系).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HouseholdRelation {
    Head,
    Spouse,
    Child,
    Parent,
    Other,
}

impl HouseholdRelation {
    pub fn as_str(self) -> &'static str {
        match self {
            HouseholdRelation::Head => "户主",
            HouseholdRelation::Spouse => "配偶",
            HouseholdRelation::Child => "子女",
            HouseholdRelation::Parent => "父母",
            HouseholdRelation::Other => "其他",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsuranceStatus {
    Active,
    Suspended,
    Closed,
}

impl InsuranceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InsuranceStatus::Active => "active",
            InsuranceStatus::Suspended => "suspended",
            InsuranceStatus::Closed => "closed",
        }
    }
}

/// The status of a housing provident fund account: `Sealed` (封存) when nobody pays into it any
/// more, `Frozen` when a court or the centre blocked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FundStatus {
    Normal,
    Sealed,
    Frozen,
}

impl FundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FundStatus::Normal => "normal",
            FundStatus::Sealed => "sealed",
            FundStatus::Frozen => "frozen",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaritalStatus {
    Unmarried,
    Married,
    Divorced,
    Widowed,
}

impl MaritalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MaritalStatus::Unmarried => "unmarried",
            MaritalStatus::Married => "married",
            MaritalStatus::Divorced => "divorced",
            MaritalStatus::Widowed => "widowed",
        }
    }
}

/// A calendar month, shown as `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i16,
    month: i8,
}

impl Month {
    pub fn of(date: Date) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn year(self) -> i16 {
        self.year
    }

    pub fn month(self) -> i8 {
        self.month
    }

    /// The month `count` months before this one.
    pub fn months_before(self, count: u32) -> Month {
        let index = i64::from(self.year) * 12 + i64::from(self.month - 1) - i64::from(count);
        Month {
            year: index.div_euclid(12) as i16,
            month: (index.rem_euclid(12) + 1) as i8,
        }
    }

    /// How many months `self` lies before `later` (negative when it lies after).
    pub fn months_until(self, later: Month) -> i64 {
        (i64::from(later.year) - i64::from(self.year)) * 12 + i64::from(later.month)
            - i64::from(self.month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// How many months of history the insurance and fund services answer with.
pub const HISTORY_MONTHS: u32 = 24;

/// A Chinese name as indices into the vocabulary: a surname and one or two given-name characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    surname: u8,
    given: [u16; 2],
}

impl Name {
    /// Marks a one-character given name in `given[1]`.
    const NO_CHARACTER: u16 = u16::MAX;

    fn write_to(self, out: &mut String) {
        use fmt::Write;
        write!(out, "{self}").expect("writing to a string cannot fail");
    }

    fn surname(self) -> &'static str {
        SURNAMES[usize::from(self.surname)].0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.surname())?;
        for character in self.given {
            if character != Name::NO_CHARACTER {
                f.write_str(vocabulary::given_name_character(character))?;
            }
        }
        Ok(())
    }
}

/// Where a home lies: a district of Nanjing or one of a few places elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Nanjing { district: u8 },
    Elsewhere { place: u8 },
}

/// A flat's address: `江苏省南京市玄武区中山路100号3栋201室`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    location: Location,
    road: u8,
    number: u16,
    building: u8,
    room: u16,
}

impl Address {
    /// The GB/T 2260 code of the district (in Nanjing) or city elsewhere.
    pub fn region(&self) -> &'static str {
        match self.location {
            Location::Nanjing { district } => DISTRICTS[usize::from(district)].code,
            Location::Elsewhere { place } => PLACES_ELSEWHERE[usize::from(place)].region,
        }
    }

    pub fn is_in_nanjing(&self) -> bool {
        matches!(self.location, Location::Nanjing { .. })
    }

    fn road_name(&self) -> &'static str {
        match self.location {
            Location::Nanjing { district } => {
                DISTRICTS[usize::from(district)].roads[usize::from(self.road)]
            }
            Location::Elsewhere { .. } => COMMON_ROADS[usize::from(self.road)],
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Location::Nanjing { district } => {
                write!(f, "江苏省南京市{}", DISTRICTS[usize::from(district)].name)?
            }
            Location::Elsewhere { place } => {
                f.write_str(PLACES_ELSEWHERE[usize::from(place)].address_prefix)?
            }
        }
        write!(
            f,
            "{}{}号{}栋{}室",
            self.road_name(),
            self.number,
            self.building,
            self.room
        )
    }
}

/// A household registration (户籍) in one of Nanjing's districts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Household {
    serial: u32,
    address: Address,
    relation: HouseholdRelation,
    registered_on: Date,
}

impl Household {
    /// `H` + the district code + a seven-digit number, shared by the members of one household.
    pub fn household_id(&self) -> String {
        format!("H{}{:07}", self.address.region(), self.serial)
    }

    /// The district's GB/T 2260 code (3201xx).
    pub fn region(&self) -> &'static str {
        self.address.region()
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    pub fn relation(&self) -> HouseholdRelation {
        self.relation
    }

    pub fn registered_on(&self) -> Date {
        self.registered_on
    }
}

/// A social insurance record (社保) in Nanjing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocialInsurance {
    status: InsuranceStatus,
    employer: u16,
    /// Bit `n` is set when contributions were paid `n` months before the population's latest
    /// month.
    paid_months: u32,
}

impl SocialInsurance {
    pub fn status(&self) -> InsuranceStatus {
        self.status
    }

    /// The employer's name, such as `南京紫金软件有限公司`.
    pub fn employer(&self) -> String {
        employer_name(self.employer)
    }

    /// Whether contributions were paid `months_ago` months before the latest month (0 = the
    /// latest month itself).
    pub fn paid(&self, months_ago: u32) -> bool {
        months_ago < HISTORY_MONTHS && self.paid_months & (1 << months_ago) != 0
    }
}

fn employer_name(employer: u16) -> String {
    let employer = usize::from(employer);
    let legal_form = employer % LEGAL_FORMS.len();
    let business_line = employer / LEGAL_FORMS.len() % BUSINESS_LINES.len();
    let trade_name = employer / LEGAL_FORMS.len() / BUSINESS_LINES.len() % TRADE_NAMES.len();
    format!(
        "南京{}{}{}",
        TRADE_NAMES[trade_name], BUSINESS_LINES[business_line], LEGAL_FORMS[legal_form]
    )
}

/// A housing provident fund account (公积金). Money is kept in fen (1/100 yuan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundAccount {
    status: FundStatus,
    account_serial: u64,
    balance_fen: u32,
    monthly_deposit_fen: u32,
    /// The deposit before the latest yearly adjustment of the deposit base, each July.
    previous_deposit_fen: u32,
    /// Bit `n` is set when a deposit arrived `n` months before the population's latest month.
    deposited_months: u32,
    /// The name the account was opened under when it differs from the identity's name (a former
    /// name, a typing error): such applications cannot be matched automatically.
    recorded_name: Option<Name>,
}

impl FundAccount {
    pub fn status(&self) -> FundStatus {
        self.status
    }

    /// Sixteen digits: `320100` and a ten-digit serial.
    pub fn account_no(&self) -> String {
        format!("320100{:010}", self.account_serial)
    }

    pub fn balance_fen(&self) -> u32 {
        self.balance_fen
    }

    pub fn monthly_deposit_fen(&self) -> u32 {
        self.monthly_deposit_fen
    }

    /// Whether the account's name differs from the name in the population register.
    pub fn name_differs_from_identity(&self) -> bool {
        self.recorded_name.is_some()
    }

    /// The deposit that arrived `months_ago` months before `latest`, in fen; `None` for a month
    /// without a deposit. The deposit base is adjusted each July, so older months may show the
    /// previous amount.
    pub fn deposit_fen(&self, latest: Month, months_ago: u32) -> Option<u32> {
        if months_ago >= HISTORY_MONTHS || self.deposited_months & (1 << months_ago) == 0 {
            return None;
        }
        let month = latest.months_before(months_ago);
        let last_adjustment = if latest.month() >= 7 {
            Month {
                year: latest.year(),
                month: 7,
            }
        } else {
            Month {
                year: latest.year() - 1,
                month: 7,
            }
        };
        Some(if month >= last_adjustment {
            self.monthly_deposit_fen
        } else {
            self.previous_deposit_fen
        })
    }

    /// Whether deposits arrived in each of the `count` months ending with the latest month.
    pub fn deposited_in_each_of_last(&self, count: u32) -> bool {
        let mask = if count >= 32 {
            u32::MAX
        } else {
            (1 << count) - 1
        };
        self.deposited_months & mask == mask
    }
}

/// An entry of civil affairs' elderly care register (养老服务).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElderlyCare {
    pub receiving_allowance: bool,
    pub living_alone: bool,
    /// 1 (most severe) to 4, or `None` without a disability.
    pub disability_level: Option<u8>,
}

/// A marriage registration. Married citizens name each other: if A's spouse is B then B's spouse
/// is A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marriage {
    status: MaritalStatus,
    spouse: u32,
    registered_on: Option<Date>,
}

impl Marriage {
    const NO_SPOUSE: u32 = u32::MAX;

    pub fn status(&self) -> MaritalStatus {
        self.status
    }

    /// The spouse's index in the population, while married.
    pub fn spouse_index(&self) -> Option<usize> {
        (self.spouse != Marriage::NO_SPOUSE).then_some(self.spouse as usize)
    }

    /// The date of the registration that gave the current status (the wedding, the divorce, the
    /// spouse's death); `None` for the unmarried.
    pub fn registered_on(&self) -> Option<Date> {
        self.registered_on
    }
}

/// A real estate registration (不动产登记).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    owner: u32,
    certificate_serial: u32,
    address: Address,
    /// Floor area in tenths of a square metre.
    area_tenths_m2: u16,
    registered_on: Date,
}

impl Property {
    pub fn owner_index(&self) -> usize {
        self.owner as usize
    }

    /// Such as `苏(2019)南京市不动产权第0012345号`.
    pub fn certificate_no(&self) -> String {
        let (prefix, city) = match self.address.location {
            Location::Nanjing { .. } => ("苏", "南京市"),
            Location::Elsewhere { place } => {
                let place = &PLACES_ELSEWHERE[usize::from(place)];
                (place.certificate_prefix, place.city)
            }
        };
        format!(
            "{prefix}({}){city}不动产权第{:07}号",
            self.registered_on.year(),
            self.certificate_serial
        )
    }

    /// The GB/T 2260 code of the district or city.
    pub fn region(&self) -> &'static str {
        self.address.region()
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    pub fn area_tenths_m2(&self) -> u16 {
        self.area_tenths_m2
    }

    pub fn area_m2(&self) -> f64 {
        f64::from(self.area_tenths_m2) / 10.0
    }

    pub fn registered_on(&self) -> Date {
        self.registered_on
    }
}

/// A medical birth certificate (出生医学证明) of a baby born in the last months, naming the mother
/// and, on most certificates, the father. The baby has no ID number yet: registering it is the
/// newborn registration scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthCertificate {
    serial: u32,
    child_name: Name,
    child_gender: Gender,
    born_on: Date,
    hospital: u8,
    mother: u32,
    /// [`BirthCertificate::NO_FATHER`] when the certificate names no father.
    father: u32,
}

impl BirthCertificate {
    const PREFIX: &'static str = "Q3201";
    const NO_FATHER: u32 = u32::MAX;

    /// `Q3201` and eight digits, such as `Q320100123456`.
    pub fn certificate_no(&self) -> String {
        format!("{}{:08}", BirthCertificate::PREFIX, self.serial)
    }

    fn parse_serial(certificate_no: &str) -> Option<u32> {
        let digits = certificate_no.strip_prefix(BirthCertificate::PREFIX)?;
        if digits.len() != 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    pub fn child_name(&self) -> String {
        self.child_name.to_string()
    }

    pub fn child_gender(&self) -> Gender {
        self.child_gender
    }

    pub fn born_on(&self) -> Date {
        self.born_on
    }

    pub fn hospital(&self) -> &'static str {
        HOSPITALS[usize::from(self.hospital)]
    }

    pub fn mother_index(&self) -> usize {
        self.mother as usize
    }

    /// The father's index in the population, `None` when the certificate names no father.
    pub fn father_index(&self) -> Option<usize> {
        (self.father != BirthCertificate::NO_FATHER).then_some(self.father as usize)
    }
}

/// One synthetic citizen. Every part of the record is consistent with the others: the gender and
/// birth date are those of the ID number, the deceased have no household, spouses share one.
#[derive(Clone, PartialEq, Eq)]
pub struct Citizen {
    id_number: [u8; 18],
    name: Name,
    birth_date: Date,
    /// The birth date in the population register: the ID number's, unless it was corrected
    /// later (old people's dates were often written down wrongly, or in the lunar calendar) and
    /// the number kept.
    register_birth_date: Date,
    status: IdentityStatus,
    household: Option<Household>,
    insurance: Option<SocialInsurance>,
    fund_account: Option<FundAccount>,
    elderly_care: ElderlyCare,
    marriage: Marriage,
}

impl Citizen {
    /// The 18-character GB 11643 ID number.
    pub fn id_number(&self) -> &str {
        std::str::from_utf8(&self.id_number).expect("an ID number is ASCII")
    }

    pub fn name(&self) -> String {
        self.name.to_string()
    }

    /// Appends the name to `out`, for answers built without intermediate strings.
    pub fn write_name(&self, out: &mut String) {
        self.name.write_to(out);
    }

    pub fn surname(&self) -> &'static str {
        self.name.surname()
    }

    pub fn gender(&self) -> Gender {
        if (self.id_number[16] - b'0') % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// The birth date in the ID number.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// The birth date the population register answers with; see
    /// [`Citizen::birth_date_corrected`].
    pub fn register_birth_date(&self) -> Date {
        self.register_birth_date
    }

    /// Whether the register's birth date differs from the ID number's, which a clerk must look
    /// at before paying an allowance by age.
    pub fn birth_date_corrected(&self) -> bool {
        self.register_birth_date != self.birth_date
    }

    /// Age in whole years on `date`, by the ID number's birth date.
    pub fn age_on(&self, date: Date) -> u32 {
        age_on(self.birth_date, date)
    }

    pub fn status(&self) -> IdentityStatus {
        self.status
    }

    /// The household registration, `None` when the citizen is not registered in Nanjing.
    pub fn household(&self) -> Option<&Household> {
        self.household.as_ref()
    }

    /// The social insurance record, `None` when never insured in Nanjing.
    pub fn insurance(&self) -> Option<&SocialInsurance> {
        self.insurance.as_ref()
    }

    pub fn fund_account(&self) -> Option<&FundAccount> {
        self.fund_account.as_ref()
    }

    /// The name on the fund account: the identity's name unless the account was opened under
    /// another.
    pub fn write_fund_account_name(&self, out: &mut String) {
        match self.fund_account.and_then(|account| account.recorded_name) {
            Some(recorded) => recorded.write_to(out),
            None => self.name.write_to(out),
        }
    }

    pub fn elderly_care(&self) -> &ElderlyCare {
        &self.elderly_care
    }

    pub fn marriage(&self) -> &Marriage {
        &self.marriage
    }
}

// Synthetic or not, an ID number is shown in part only, as civitas-core's `CitizenId` does, so
// that habits learnt on demo data are safe on real data.
impl fmt::Debug for Citizen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id_number = self.id_number();
        f.debug_struct("Citizen")
            .field(
                "id_number",
                &format_args!("{}********{}", &id_number[..6], &id_number[14..]),
            )
            .field("status", &self.status)
            .field("household", &self.household)
            .field("insurance", &self.insurance)
            .field("fund_account", &self.fund_account)
            .field("elderly_care", &self.elderly_care)
            .field("marriage", &self.marriage)
            .finish_non_exhaustive()
    }
}

/// Whole years from `birth` to `date`.
pub(crate) fn age_on(birth: Date, date: Date) -> u32 {
    let mut years = i32::from(date.year()) - i32::from(birth.year());
    if (date.month(), date.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years.max(0) as u32
}

/// The synthetic citizens of one demo city and their records.
#[derive(Debug, PartialEq, Eq)]
pub struct Population {
    seed: u64,
    today: Date,
    latest_month: Month,
    citizens: Vec<Citizen>,
    /// Positions in `citizens`, ordered by ID number, for binary search.
    by_id_number: Vec<u32>,
    properties: Vec<Property>,
    /// `properties[property_starts[i]..property_starts[i + 1]]` belong to citizen `i`.
    property_starts: Vec<u32>,
    /// Ordered by certificate number.
    birth_certificates: Vec<BirthCertificate>,
}

impl Population {
    /// Generates `count` citizens from `seed`, as they stand on `today`. The same arguments give
    /// the same population on every run and platform.
    pub fn generate(seed: u64, count: usize, today: Date) -> Result<Population, GenerationError> {
        generate::generate(seed, count, today)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn today(&self) -> Date {
        self.today
    }

    /// The newest month of the insurance and fund histories: the month before today's, the last
    /// one whose contributions are complete.
    pub fn latest_month(&self) -> Month {
        self.latest_month
    }

    pub fn len(&self) -> usize {
        self.citizens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.citizens.is_empty()
    }

    pub fn citizens(&self) -> &[Citizen] {
        &self.citizens
    }

    /// The citizen at `index` (as in [`Marriage::spouse_index`] or [`Property::owner_index`]).
    pub fn citizen(&self, index: usize) -> &Citizen {
        &self.citizens[index]
    }

    /// The position of the citizen with this ID number; a lower-case `x` check character is
    /// accepted.
    pub fn index_of(&self, id_number: &str) -> Option<usize> {
        let wanted: [u8; 18] = id_number.as_bytes().try_into().ok()?;
        let mut wanted = wanted;
        wanted[17] = wanted[17].to_ascii_uppercase();
        self.by_id_number
            .binary_search_by(|&index| self.citizens[index as usize].id_number.cmp(&wanted))
            .ok()
            .map(|position| self.by_id_number[position] as usize)
    }

    pub fn find(&self, id_number: &str) -> Option<&Citizen> {
        self.index_of(id_number).map(|index| &self.citizens[index])
    }

    /// The real estate registered to the citizen at `index`.
    pub fn properties_of(&self, index: usize) -> &[Property] {
        let start = self.property_starts[index] as usize;
        let end = self.property_starts[index + 1] as usize;
        &self.properties[start..end]
    }

    pub fn properties(&self) -> &[Property] {
        &self.properties
    }

    pub fn spouse_of(&self, citizen: &Citizen) -> Option<&Citizen> {
        citizen
            .marriage
            .spouse_index()
            .map(|index| &self.citizens[index])
    }

    /// All birth certificates, ordered by certificate number.
    pub fn birth_certificates(&self) -> &[BirthCertificate] {
        &self.birth_certificates
    }

    pub fn birth_certificate(&self, certificate_no: &str) -> Option<&BirthCertificate> {
        let serial = BirthCertificate::parse_serial(certificate_no)?;
        self.birth_certificates
            .binary_search_by_key(&serial, |certificate| certificate.serial)
            .ok()
            .map(|position| &self.birth_certificates[position])
    }

    /// The heap and inline bytes the population holds, for sizing the demo city.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Population>()
            + self.citizens.capacity() * std::mem::size_of::<Citizen>()
            + self.by_id_number.capacity() * std::mem::size_of::<u32>()
            + self.properties.capacity() * std::mem::size_of::<Property>()
            + self.property_starts.capacity() * std::mem::size_of::<u32>()
            + self.birth_certificates.capacity() * std::mem::size_of::<BirthCertificate>()
    }
}
