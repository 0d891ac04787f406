//! Finding a household or enterprise as a walker types: by a Chinese substring of its name or
//! address, by its id, by a care tag, or by the pinyin initials of its name or address (typing
//! `zgy` finds 张桂英), since pinyin initials are the quickest thing to type on a phone keyboard
//! with gloves on.

use pinyin::ToPinyin;

/// The first pinyin letter of every Chinese character in `text`, lower case; other letters and
/// digits are kept as they are (lower case) so "3号楼" gives "3hl".
pub fn pinyin_initials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (ch, py) in text.chars().zip(text.to_pinyin()) {
        match py {
            Some(p) => out.push_str(p.first_letter()),
            None if ch.is_ascii_alphanumeric() => out.push(ch.to_ascii_lowercase()),
            None => {}
        }
    }
    out
}

/// Whether `query` finds a place with these texts. An empty query finds everything. A query of
/// ASCII letters also matches the pinyin initials of any text; anything else matches as a
/// case-insensitive substring.
pub fn place_matches(query: &str, texts: &[&str]) -> bool {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    if texts.iter().any(|t| t.to_lowercase().contains(&q)) {
        return true;
    }
    let initials_query = q.chars().all(|c| c.is_ascii_alphanumeric());
    initials_query && texts.iter().any(|t| pinyin_initials(t).contains(&q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_of_a_name_and_an_address() {
        assert_eq!(pinyin_initials("张桂英"), "zgy");
        assert_eq!(pinyin_initials("马社村3组"), "msc3z");
    }

    #[test]
    fn a_query_matches_by_substring_or_initials_and_not_otherwise() {
        assert!(place_matches("桂英", &["张桂英", "马社村"]));
        assert!(place_matches("zgy", &["张桂英"]));
        assert!(place_matches("ZGY", &["张桂英"]));
        assert!(place_matches("msc", &["张桂英", "马社村12号"]));
        assert!(place_matches("h-0012", &["H-0012"]));
        assert!(!place_matches("lgy", &["张桂英", "马社村12号"]));
        assert!(!place_matches("李", &["张桂英"]));
        assert!(place_matches("  ", &["张桂英"]));
    }
}
