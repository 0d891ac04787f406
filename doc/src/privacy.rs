//! Minimum exposure (issue 14): how a resident's phone number is shown where a list shows it.
//! One place for the rule, so the walker's app, the hall console and any export that masks
//! agree. The full number is shown only when someone asks for it, and that is recorded
//! (`gridwalk_core::store::access`).

/// A phone number as a list shows it: the first three and the last four digits of a number of
/// eleven digits or more (a mobile: 138****1234, the way Chinese government apps mask it), two
/// and two of a landline without its area code, the last two of anything shorter, and always some
/// digits hidden. Characters that are not digits (spaces, dashes, +) are dropped.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let (head, tail) = match digits.len() {
        0 => return String::new(),
        n if n >= 11 => (3, 4),
        n if n >= 7 => (2, 2),
        n if n >= 4 => (0, 2),
        _ => (0, 0),
    };
    let n = digits.len();
    digits.iter().enumerate().map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_shows_at_most_its_first_three_and_last_four_digits() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("138 1234 5678"), "138****5678");
        assert_eq!(mask_phone("+86 138-1234-5678"), "861******5678");
        assert_eq!(mask_phone("0573-8501234"), "057****1234");
        assert_eq!(mask_phone("8501234"), "85***34");
        assert_eq!(mask_phone("110"), "***");
        assert_eq!(mask_phone(""), "");
        for phone in ["13812345678", "0573-8501234", "8501234", "12345", "1234"] {
            let hidden = mask_phone(phone).chars().filter(|c| *c == '*').count();
            assert!(hidden >= 2 && (phone.len() < 7 || hidden >= 3), "{phone} hides only {hidden} digits");
        }
    }
}
