//! Properties every mask keeps: idempotence, length, hidden characters gone, no panics.

use civitas_access::mask::{
    self, COMPOUND_SURNAMES, MASK_CHARACTER, MaskKind, keeps_length, mask_address, mask_bank_card,
    mask_citizen_id, mask_generic, mask_mobile, mask_name,
};
use civitas_core::CitizenId;
use proptest::prelude::*;

fn characters(text: &str) -> Vec<char> {
    text.chars().collect()
}

/// Positions where `masked` shows `*` must have hidden the original character, and positions
/// listed in `hidden` must be `*`.
fn assert_hidden(original: &str, masked: &str, hidden: impl IntoIterator<Item = usize>) {
    let masked_characters = characters(masked);
    for position in hidden {
        assert_eq!(
            masked_characters[position], MASK_CHARACTER,
            "position {position} of {masked:?} (from {original:?}) is not hidden"
        );
    }
}

/// Checks the rules every kind shares on one input.
fn assert_common_rules(kind: MaskKind, value: &str) {
    let Some(masked) = mask::mask(kind, value) else {
        assert_eq!(kind, MaskKind::FreeText, "only free text is removed");
        return;
    };
    assert_eq!(
        mask::mask(kind, &masked).as_deref(),
        Some(masked.as_str()),
        "{kind} is not idempotent on {value:?}"
    );
    if keeps_length(kind) {
        assert_eq!(
            masked.chars().count(),
            value.chars().count(),
            "{kind} changed the length of {value:?}"
        );
    }
    // Masks only ever replace characters by `*`.
    for (original, shown) in value.chars().zip(masked.chars()) {
        assert!(
            shown == original || shown == MASK_CHARACTER,
            "{kind} turned {original:?} into {shown:?}"
        );
    }
}

fn any_kind() -> impl Strategy<Value = MaskKind> {
    proptest::sample::select(MaskKind::ALL.to_vec())
}

/// Text that looks like the values masks meet: digits, separators, Chinese, Latin and `*`.
fn plausible_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('0', '9'),
            Just(' '),
            Just('-'),
            Just('+'),
            Just('*'),
            Just('X'),
            proptest::char::range('a', 'z'),
            proptest::char::range('\u{4E00}', '\u{4E80}'),
            proptest::sample::select(vec![
                '省', '市', '区', '县', '旗', '州', '路', '号', '欧', '阳'
            ]),
        ],
        0..24,
    )
    .prop_map(|characters| characters.into_iter().collect())
}

const REGIONS: &[&str] = &["110105", "320102", "320118", "310115", "440305"];

fn citizen_id() -> impl Strategy<Value = CitizenId> {
    (
        proptest::sample::select(REGIONS.to_vec()),
        1900u32..2099,
        1u32..=12,
        1u32..=28,
        0u32..1000,
    )
        .prop_map(|(region, year, month, day, sequence)| {
            CitizenId::from_parts(region, year, month, day, sequence)
                .expect("generated parts are valid")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_kind_panics_on_arbitrary_unicode(kind in any_kind(), value in any::<String>()) {
        assert_common_rules(kind, &value);
    }

    #[test]
    fn common_rules_hold_on_plausible_text(kind in any_kind(), value in plausible_text()) {
        assert_common_rules(kind, &value);
    }

    #[test]
    fn citizen_ids_hide_the_birth_date(id in citizen_id()) {
        let text = id.as_str();
        let masked = mask_citizen_id(text);
        assert_common_rules(MaskKind::CitizenId, text);
        assert_hidden(text, &masked, 6..14);
        prop_assert_eq!(&masked[..6], &text[..6]);
        prop_assert_eq!(&masked[14..], &text[14..]);
    }

    #[test]
    fn mobile_numbers_hide_the_middle_four(
        prefix in proptest::sample::select(vec!["", "86", "+86", "+86 "]),
        network in proptest::sample::select(vec!["13", "15", "17", "18", "19"]),
        rest in "[0-9]{9}",
    ) {
        let value = format!("{prefix}{network}{rest}");
        let masked = mask_mobile(&value);
        assert_common_rules(MaskKind::Mobile, &value);
        let start = prefix.chars().count();
        assert_hidden(&value, &masked, start + 3..start + 7);
        prop_assert_eq!(&masked[..start + 3], &value[..start + 3]);
        prop_assert_eq!(&masked[start + 7..], &value[start + 7..]);
    }

    #[test]
    fn bank_cards_show_only_the_last_four_digits(
        digits in "[0-9]{12,19}",
        grouped in any::<bool>(),
    ) {
        let value = if grouped {
            digits
                .as_bytes()
                .chunks(4)
                .map(|chunk| std::str::from_utf8(chunk).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            digits.clone()
        };
        let masked = mask_bank_card(&value);
        assert_common_rules(MaskKind::BankCard, &value);
        let shown_digits: String = masked.chars().filter(char::is_ascii_digit).collect();
        prop_assert_eq!(shown_digits, digits[digits.len() - 4..].to_owned());
    }

    #[test]
    fn names_keep_only_the_family_name(
        family in proptest::sample::select(vec!["张", "王", "李", "欧阳", "司马", "诸葛"]),
        given in proptest::collection::vec(proptest::char::range('\u{4E00}', '\u{9FA5}'), 1..4),
    ) {
        let given: String = given.into_iter().collect();
        let value = format!("{family}{given}");
        let masked = mask_name(&value);
        assert_common_rules(MaskKind::Name, &value);
        let total = value.chars().count();
        let compound = COMPOUND_SURNAMES.contains(&family) && total >= 3;
        let kept = if compound { 2 } else { 1 };
        assert_hidden(&value, &masked, kept..total);
        prop_assert!(masked.starts_with(&family.chars().take(kept).collect::<String>()));
    }

    #[test]
    fn latin_names_keep_initials(words in proptest::collection::vec("[A-Z][a-z]{1,8}", 1..4)) {
        let value = words.join(" ");
        let masked = mask_name(&value);
        assert_common_rules(MaskKind::Name, &value);
        let initials: Vec<char> = masked.split(' ').filter_map(|word| word.chars().next()).collect();
        let expected: Vec<char> = words.iter().filter_map(|word| word.chars().next()).collect();
        prop_assert_eq!(initials, expected);
        prop_assert!(masked.chars().all(|c| c == ' ' || c == MASK_CHARACTER || c.is_ascii_uppercase()));
    }

    #[test]
    fn addresses_keep_only_the_district(
        province in proptest::sample::select(vec!["江苏省", "浙江省", ""]),
        city in proptest::sample::select(vec!["南京市", "苏州市", "杭州市"]),
        district in proptest::sample::select(vec!["玄武区", "江宁区", "昆山市", "溧水区", "桐庐县"]),
        street in proptest::sample::select(vec!["中山路", "珠江路", "长江路"]),
        number in 1u32..999,
        building in 1u32..30,
    ) {
        let value = format!("{province}{city}{district}{street}{number}号{building}栋");
        let masked = mask_address(&value);
        assert_common_rules(MaskKind::Address, &value);
        let kept = format!("{province}{city}{district}");
        prop_assert!(masked.starts_with(&kept), "{} does not keep {}", masked, kept);
        let kept_length = kept.chars().count();
        assert_hidden(&value, &masked, kept_length..value.chars().count());
    }

    #[test]
    fn generic_values_keep_only_their_ends(value in "\\PC{4,30}") {
        let masked = mask_generic(&value);
        assert_common_rules(MaskKind::Generic, &value);
        let total = value.chars().count();
        assert_hidden(&value, &masked, 1..total - 1);
    }

    #[test]
    fn free_text_is_removed(value in any::<String>()) {
        prop_assert_eq!(mask::mask(MaskKind::FreeText, &value), None);
    }
}
