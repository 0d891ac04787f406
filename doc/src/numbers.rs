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

/// Why `number` cannot be a number given to a request raised at `created_at` by the device
/// whose code is one of `device_codes` (`None`: it can). The relay asks this of every new
/// request, so that no device can hand out another device's numbers and make two requests
/// answer to one number. `device_codes` empty: the device is not known (a request passed on by
/// a hall PC), and only the form and the day are checked.
pub fn number_refusal(number: &str, created_at: Timestamp, device_codes: &[String]) -> Option<String> {
    let parts: Vec<&str> = number.split('-').collect();
    let [day, code, seq] = parts[..] else {
        return Some(format!("'{number}' is not a request number (day-device-count, e.g. 261205-7-3)"));
    };
    let raised = number_day(created_at).format("%y%m%d").to_string();
    if day != raised {
        return Some(format!("request number '{number}' names the day {day}, but the request was raised on {raised}"));
    }
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return Some(format!("request number '{number}' has no device part"));
    }
    if !device_codes.is_empty() && !device_codes.iter().any(|c| c == code) {
        return Some(format!(
            "request number '{number}' belongs to device {code}, not to the device that raised it ({})",
            device_codes.join(" or ")
        ));
    }
    let counted = seq.parse::<u32>().ok().filter(|n| *n >= 1 && n.to_string() == seq);
    if counted.is_none() {
        return Some(format!("request number '{number}' does not end in a count from 1"));
    }
    None
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
    fn a_number_is_refused_unless_it_is_the_raising_devices_on_the_day_raised() {
        let at = Timestamp(chrono::Utc.with_ymd_and_hms(2026, 12, 5, 15, 30, 0).unwrap());
        let own = ["7".to_string(), "B0B5".to_string()];
        assert_eq!(number_refusal("261205-7-3", at, &own), None);
        assert_eq!(number_refusal("261205-B0B5-12", at, &own), None);
        assert_eq!(number_refusal("261205-9-3", at, &[]), None, "a device not known: form and day only");
        for bad in
            ["261205-8-3", "261206-7-3", "261205-7-0", "261205-7-03", "261205-7", "261205--3", "x", "261205-7-3-1"]
        {
            assert!(number_refusal(bad, at, &own).is_some(), "{bad}");
        }
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
