//! Request numbers a person can read over the phone: `261205-7-3` is the third request device
//! number 7 raised on 5 December 2026 (the day in the display zone, Asia/Shanghai).
//!
//! They are unique without the devices talking to each other: the relay gives every device a
//! short number of its own at enrolment (never reused), and each device counts its own requests
//! day by day. A device enrolled with a relay older than device numbers, and the demo town's
//! made-up phones, use the last four letters or digits of their id instead (`261205-B0B5-3`):
//! readable, though no longer guaranteed unique. The uuid stays the document's id; the number is
//! what people say, type and search for.

use chrono::NaiveDate;

use crate::time::{Timestamp, DISPLAY_TZ};

/// The middle part of a number: the device's relay number, or else the last four letters or
/// digits of its id, in capitals.
pub fn device_code(device_number: Option<u32>, device_id: &str) -> String {
    if let Some(n) = device_number {
        return n.to_string();
    }
    let tail: Vec<char> = device_id.chars().filter(char::is_ascii_alphanumeric).collect();
    let code: String = tail[tail.len().saturating_sub(4)..].iter().collect::<String>().to_ascii_uppercase();
    if code.is_empty() {
        "0".to_string()
    } else {
        code
    }
}

/// The day part of a number: the action's date in the display zone.
pub fn number_day(at: Timestamp) -> NaiveDate {
    at.0.with_timezone(&DISPLAY_TZ).date_naive()
}

/// What every number of this device on this day starts with, dash included: `261205-7-`.
pub fn number_prefix(day: NaiveDate, device_code: &str) -> String {
    format!("{}-{device_code}-", day.format("%y%m%d"))
}

/// The whole number: the prefix and the device's count of requests that day, from 1.
pub fn request_number(day: NaiveDate, device_code: &str, seq: u32) -> String {
    format!("{}{seq}", number_prefix(day, device_code))
}

/// Whether text someone typed looks like a request number, or the start of one (`261205-7`),
/// so that a search can look it up by number rather than in the descriptions.
pub fn looks_like_number(text: &str) -> bool {
    let t = text.trim();
    let mut parts = t.split('-');
    let day = parts.next().unwrap_or("");
    day.len() == 6
        && day.bytes().all(|b| b.is_ascii_digit())
        && parts.all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_number_is_the_local_day_the_device_and_its_count() {
        // 5 December 2026, 23:30 in Shanghai is still the 5th there, though the 5th 15:30 UTC.
        let at = Timestamp(chrono::Utc.with_ymd_and_hms(2026, 12, 5, 15, 30, 0).unwrap());
        assert_eq!(request_number(number_day(at), &device_code(Some(7), "dev-94f4ab"), 3), "261205-7-3");
        let next_day = Timestamp(chrono::Utc.with_ymd_and_hms(2026, 12, 5, 16, 30, 0).unwrap());
        assert_eq!(number_prefix(number_day(next_day), "7"), "261206-7-");
    }

    #[test]
    fn a_device_without_a_relay_number_uses_the_end_of_its_id() {
        assert_eq!(device_code(None, "dev-94f4ab5eb0b5"), "B0B5");
        assert_eq!(device_code(None, "phone-w012"), "W012");
        assert_eq!(device_code(None, "pc"), "PC");
        assert_eq!(device_code(None, "--"), "0");
    }

    #[test]
    fn numbers_typed_into_a_search_are_told_from_words() {
        assert!(looks_like_number("261205-7-3"));
        assert!(looks_like_number(" 261205-7 "));
        assert!(looks_like_number("261205"));
        assert!(!looks_like_number("路灯"));
        assert!(!looks_like_number("2612-05"));
        assert!(!looks_like_number("261205-7-3 路灯"));
    }
}
