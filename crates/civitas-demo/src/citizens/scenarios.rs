//! The outcome each shipped scenario (`scenarios/*.yaml`) should reach for an application made
//! in the demo city, and example applications for each outcome, which the demo prints and the
//! tests run.
//!
//! The rules restate the shipped definitions on the generated records, in their order and with
//! their rule ids: a failed `deny` rule denies; otherwise a failed `needs_review` rule sends the
//! application to a clerk; otherwise it is approved. The examples' applicants give their names as
//! the population register has them, so `name-matches` always holds for them.

use super::{FundStatus, IdentityStatus, InsuranceStatus, Population};

/// The application scenarios shipped with civitas that the demo city's data is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// 住房公积金租房提取: identity normal and name matching, household or active social insurance
    /// in the city, no real estate in the city (3201xx), a normal fund account with deposits in
    /// each of the last three months ending with the latest month; a fund account under another
    /// name goes to review.
    HousingFundRentalWithdrawal,
    /// 高龄津贴: identity normal, aged 80 or more by the ID number, household in the city, not
    /// already receiving it; a register birth date that differs from the ID number's goes to
    /// review.
    ElderlyCareAllowance,
    /// 出生一件事: a birth certificate naming the applicant as a parent, the parents' identities
    /// normal, at least one parent's household in the city; a certificate without a father, or
    /// parents not married to each other, go to review.
    NewbornRegistration,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::HousingFundRentalWithdrawal,
        Scenario::ElderlyCareAllowance,
        Scenario::NewbornRegistration,
    ];

    /// The scenario's code in its shipped definition.
    pub fn code(self) -> &'static str {
        match self {
            Scenario::HousingFundRentalWithdrawal => "housing-fund-rental-withdrawal",
            Scenario::ElderlyCareAllowance => "elderly-care-allowance",
            Scenario::NewbornRegistration => "newborn-registration",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Approve,
    Deny,
    NeedsReview,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Approve, Outcome::Deny, Outcome::NeedsReview];

    /// As the scenario engine names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::Deny => "deny",
            Outcome::NeedsReview => "needs_review",
        }
    }
}

/// The expected outcome of one application and the rule that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub outcome: Outcome,
    /// The id of the first rule that failed with the outcome's effect (`no-home-in-city`,
    /// `parents-married`, …); `None` for an approval.
    pub failed_rule: Option<&'static str>,
}

/// An application to run a scenario with: the inputs the applicant gives in the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The applicant's ID number: the citizen themself, or the mother of a newborn.
    pub id_number: String,
    /// The applicant's name as the population register has it.
    pub name: String,
    /// The birth certificate, for newborn registration.
    pub certificate_no: Option<String>,
    /// See [`Judgement::failed_rule`].
    pub failed_rule: Option<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Examples {
    pub approve: Vec<Example>,
    pub deny: Vec<Example>,
    pub needs_review: Vec<Example>,
}

impl Examples {
    pub fn of(&self, outcome: Outcome) -> &[Example] {
        match outcome {
            Outcome::Approve => &self.approve,
            Outcome::Deny => &self.deny,
            Outcome::NeedsReview => &self.needs_review,
        }
    }

    fn of_mut(&mut self, outcome: Outcome) -> &mut Vec<Example> {
        match outcome {
            Outcome::Approve => &mut self.approve,
            Outcome::Deny => &mut self.deny,
            Outcome::NeedsReview => &mut self.needs_review,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub approve: usize,
    pub deny: usize,
    pub needs_review: usize,
}

impl OutcomeCounts {
    pub fn of(&self, outcome: Outcome) -> usize {
        match outcome {
            Outcome::Approve => self.approve,
            Outcome::Deny => self.deny,
            Outcome::NeedsReview => self.needs_review,
        }
    }
}

const APPROVED: Judgement = Judgement {
    outcome: Outcome::Approve,
    failed_rule: None,
};

const fn deny(rule: &'static str) -> Judgement {
    Judgement {
        outcome: Outcome::Deny,
        failed_rule: Some(rule),
    }
}

const fn needs_review(rule: &'static str) -> Judgement {
    Judgement {
        outcome: Outcome::NeedsReview,
        failed_rule: Some(rule),
    }
}

impl Population {
    /// The outcome `scenario` should reach for an application by `id_number` (with
    /// `certificate_no` for newborn registration) whose applicant gives their registered name.
    /// `None` when the scenario could not run to an outcome: an applicant the population register
    /// does not know, or newborn registration without a certificate number.
    pub fn expected_outcome(
        &self,
        scenario: Scenario,
        id_number: &str,
        certificate_no: Option<&str>,
    ) -> Option<Judgement> {
        match scenario {
            Scenario::HousingFundRentalWithdrawal => {
                Some(self.judge_rental_withdrawal(self.index_of(id_number)?))
            }
            Scenario::ElderlyCareAllowance => {
                Some(self.judge_elderly_care_allowance(self.index_of(id_number)?))
            }
            Scenario::NewbornRegistration => {
                let Some(position) = self.certificate_position(certificate_no?) else {
                    return Some(deny("birth-certificate-found"));
                };
                let certificate = &self.birth_certificates[position];
                let applicant = self.index_of(id_number);
                let is_parent = applicant.is_some_and(|applicant| {
                    applicant == certificate.mother_index()
                        || Some(applicant) == certificate.father_index()
                });
                if !is_parent {
                    return Some(deny("applicant-is-parent"));
                }
                Some(self.judge_newborn_registration(position))
            }
        }
    }

    /// How many applications reach each outcome: one per citizen, or per birth certificate for
    /// newborn registration.
    pub fn outcome_counts(&self, scenario: Scenario) -> OutcomeCounts {
        let mut counts = OutcomeCounts::default();
        for position in 0..self.application_count(scenario) {
            match self.judge(scenario, position).outcome {
                Outcome::Approve => counts.approve += 1,
                Outcome::Deny => counts.deny += 1,
                Outcome::NeedsReview => counts.needs_review += 1,
            }
        }
        counts
    }

    /// Up to `per_outcome` example applications for each outcome. The examples of one outcome
    /// take turns between the rules that decide it, so that a short list shows every rule.
    pub fn examples(&self, scenario: Scenario, per_outcome: usize) -> Examples {
        // Per outcome: (failed rule, positions), in the order the rules are first met.
        let mut by_rule: [Vec<(Option<&'static str>, Vec<usize>)>; 3] = Default::default();
        for position in 0..self.application_count(scenario) {
            let judgement = self.judge(scenario, position);
            let buckets = &mut by_rule[judgement.outcome as usize];
            let bucket = match buckets
                .iter()
                .position(|(rule, _)| *rule == judgement.failed_rule)
            {
                Some(bucket) => bucket,
                None => {
                    buckets.push((judgement.failed_rule, Vec::new()));
                    buckets.len() - 1
                }
            };
            let positions = &mut buckets[bucket].1;
            if positions.len() < per_outcome {
                positions.push(position);
            }
        }
        let mut examples = Examples::default();
        for outcome in Outcome::ALL {
            let buckets = &by_rule[outcome as usize];
            let chosen = examples.of_mut(outcome);
            let mut round = 0;
            while chosen.len() < per_outcome {
                let before = chosen.len();
                for (failed_rule, positions) in buckets {
                    if let Some(&position) = positions.get(round)
                        && chosen.len() < per_outcome
                    {
                        chosen.push(self.example(scenario, position, *failed_rule));
                    }
                }
                if chosen.len() == before {
                    break;
                }
                round += 1;
            }
        }
        examples
    }

    fn application_count(&self, scenario: Scenario) -> usize {
        match scenario {
            Scenario::NewbornRegistration => self.birth_certificates.len(),
            _ => self.citizens.len(),
        }
    }

    fn certificate_position(&self, certificate_no: &str) -> Option<usize> {
        let serial = self.birth_certificate(certificate_no)?.serial;
        self.birth_certificates
            .binary_search_by_key(&serial, |certificate| certificate.serial)
            .ok()
    }

    fn example(
        &self,
        scenario: Scenario,
        position: usize,
        failed_rule: Option<&'static str>,
    ) -> Example {
        let (applicant, certificate_no) = match scenario {
            Scenario::NewbornRegistration => {
                let certificate = &self.birth_certificates[position];
                (
                    self.citizen(certificate.mother_index()),
                    Some(certificate.certificate_no()),
                )
            }
            _ => (self.citizen(position), None),
        };
        Example {
            id_number: applicant.id_number().to_owned(),
            name: applicant.name(),
            certificate_no,
            failed_rule,
        }
    }

    fn judge(&self, scenario: Scenario, position: usize) -> Judgement {
        match scenario {
            Scenario::HousingFundRentalWithdrawal => self.judge_rental_withdrawal(position),
            Scenario::ElderlyCareAllowance => self.judge_elderly_care_allowance(position),
            Scenario::NewbornRegistration => self.judge_newborn_registration(position),
        }
    }

    fn judge_rental_withdrawal(&self, index: usize) -> Judgement {
        let citizen = self.citizen(index);
        if citizen.status() != IdentityStatus::Normal {
            return deny("identity-normal");
        }
        let insured_here = citizen
            .insurance()
            .is_some_and(|insurance| insurance.status() == InsuranceStatus::Active);
        if citizen.household().is_none() && !insured_here {
            return deny("lives-in-city");
        }
        if self
            .properties_of(index)
            .iter()
            .any(|property| property.region().starts_with("3201"))
        {
            return deny("no-home-in-city");
        }
        let Some(account) = citizen
            .fund_account()
            .filter(|account| account.status() == FundStatus::Normal)
        else {
            return deny("fund-account-normal");
        };
        if !account.deposited_in_each_of_last(3) {
            return deny("consecutive-deposits");
        }
        if account.balance_fen() == 0 {
            return deny("balance-available");
        }
        if account.name_differs_from_identity() {
            return needs_review("fund-name-matches");
        }
        APPROVED
    }

    fn judge_elderly_care_allowance(&self, index: usize) -> Judgement {
        let citizen = self.citizen(index);
        if citizen.status() != IdentityStatus::Normal {
            return deny("identity-normal");
        }
        if citizen.age_on(self.today) < 80 {
            return deny("aged-80-or-over");
        }
        if citizen.household().is_none() {
            return deny("household-in-city");
        }
        if citizen.elderly_care().receiving_allowance {
            return deny("not-already-receiving");
        }
        if citizen.birth_date_corrected() {
            return needs_review("birth-date-consistent");
        }
        APPROVED
    }

    fn judge_newborn_registration(&self, position: usize) -> Judgement {
        let certificate = &self.birth_certificates[position];
        let mother = self.citizen(certificate.mother_index());
        let father = certificate.father_index().map(|index| self.citizen(index));
        if mother.status() != IdentityStatus::Normal {
            return deny("mother-identity-normal");
        }
        if father.is_some_and(|father| father.status() != IdentityStatus::Normal) {
            return deny("father-identity-normal");
        }
        if mother.household().is_none() && father.is_none_or(|father| father.household().is_none())
        {
            return deny("household-in-city");
        }
        if father.is_none() {
            return needs_review("father-named");
        }
        if mother.marriage().spouse_index() != certificate.father_index() {
            return needs_review("parents-married");
        }
        APPROVED
    }
}
