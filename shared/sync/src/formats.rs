//! Attio values in the exact formats HubSpot accepts: instants as epoch milliseconds, amounts
//! as plain decimal numbers, multi-values joined with semicolons, and note/task bodies as
//! escaped HTML under HubSpot's length limit.
//!
//! Dates and instants go through the `time` crate (and `relay_events::clock` for printing):
//! a well-kept calendar beats a private copy of civil-date arithmetic. What stays here is only
//! which ISO 8601 shapes Attio may send, as one format description.

use relay_events::clock;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::parsing::Parsed;
use time::{Date, UtcDateTime};

/// HubSpot's limit on `hs_note_body`: "The note's text content, limited to 65,536 characters."
/// (<https://developers.hubspot.com/docs/api/crm/notes>). HubSpot counts Java characters
/// (UTF-16 code units), so lengths here are UTF-16 lengths: an emoji counts twice, never less
/// than HubSpot counts it.
pub const HUBSPOT_BODY_LIMIT: usize = 65_536;

/// Epoch milliseconds (UTC) of an Attio date or timestamp, as HubSpot wants `hs_timestamp` and
/// datetime properties: "You can use either a Unix timestamp in milliseconds or UTC format"
/// (<https://developers.hubspot.com/docs/api/crm/notes>); a value in milliseconds is accepted
/// by every HubSpot date and datetime property
/// (<https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis>).
///
/// Accepts what Attio returns and documents
/// (<https://docs.attio.com/docs/attribute-types/attribute-types-timestamp>,
/// <https://docs.attio.com/docs/attribute-types/attribute-types-date>):
/// - a date `YYYY-MM-DD` (date attributes; task deadlines may be dates,
///   <https://docs.attio.com/rest-api/endpoint-reference/tasks/create-a-task>): midnight UTC,
///   the instant HubSpot's own date properties use;
/// - `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with `Z`, `±HH:MM`, `±HHMM`, `±HH` or no zone (UTC, as Attio
///   assumes). Fractions of any length (Attio sends nine digits) are truncated to milliseconds.
///
/// `None` for anything else, or an impossible date or time.
pub fn epoch_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    // Four plain digits: `time` would also take a signed year (`+2023`, `-0001`).
    if !text.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut parsed = Parsed::new();
    let rest = parsed.parse_items(text.as_bytes(), ATTIO_INSTANT).ok()?;
    // `time` accepts offsets up to ±25:59; no zone on Earth is a day or more off UTC.
    if !rest.is_empty() || parsed.offset_hour().is_some_and(|h| h.unsigned_abs() > 23) {
        return None;
    }
    if parsed.hour_24().is_none() {
        // A date: midnight UTC.
        return Date::try_from(parsed).ok().map(clock::millis_of_date);
    }
    // No zone (or `Z`) leaves the offset unset: UTC.
    UtcDateTime::try_from(parsed).ok().map(clock::millis_of)
}

/// The shapes [`epoch_millis`] reads: a date, then optionally `T`/`t`/space, `HH:MM`, optional
/// `:SS` with an optional `.`/`,` fraction (any number of digits, truncated past nanoseconds),
/// and an optional zone `Z`/`z`/`±HH[[:]MM]`.
const ATTIO_INSTANT: &[BorrowedFormatItem<'_>] = format_description!(
    version = 2,
    "[year]-[month]-[day][optional [[first [T][t][ ]][hour]:[minute]\
     [optional [:[second][optional [[first [.][,]][subsecond]]]]]\
     [optional [[first [Z][z][[offset_hour sign:mandatory][optional [[optional [:]][offset_minute]]]]]]]]]"
);

/// [`epoch_millis`] as the decimal string HubSpot properties carry.
pub fn hubspot_timestamp(text: &str) -> Option<String> {
    epoch_millis(text).map(|ms| ms.to_string())
}

/// Midnight UTC of the instant's UTC calendar date, in epoch milliseconds: HubSpot date (not
/// datetime) properties "must be set to midnight UTC for the date you want. ... If you try to
/// set a value that is not midnight UTC, you will receive an error"
/// (<https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis>).
pub fn hubspot_date(text: &str) -> Option<String> {
    epoch_millis(text).map(|ms| (ms.div_euclid(DAY_MS) * DAY_MS).to_string())
}

const DAY_MS: i64 = 86_400_000;

/// The UTC calendar date `YYYY-MM-DD` of epoch milliseconds: what an Attio date attribute is
/// written as when a HubSpot date property flows back (two-way sync). Outside the years
/// 0000–9999 the milliseconds as written, as [`relay_events::clock::rfc3339_millis`].
pub fn iso_date(ms: i64) -> String {
    clock::format_millis(ms, format_description!("[year]-[month]-[day]"))
}

/// The UTC instant `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds: an Attio timestamp
/// attribute written from a HubSpot datetime property.
pub fn iso_instant(ms: i64) -> String {
    clock::rfc3339_millis(ms)
}

/// A plain decimal number HubSpot's number properties accept (`"1500.00"` in its deal example,
/// <https://developers.hubspot.com/docs/api/crm/deals>): optional `-`, digits, optional
/// fraction; an exponent is expanded, a leading `+` and surrounding blanks dropped. `None` for
/// text that is not a number (a currency symbol, thousands separators, `NaN`).
pub fn plain_number(text: &str) -> Option<String> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exp)) => (mantissa, exp.parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and where the point goes among them.
    let all: String = [int, frac].concat();
    let point = i64::try_from(int.len()).ok()? + i64::from(exponent);
    if !(-400..=400).contains(&point) {
        return None;
    }
    let (int, frac) = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).ok()?);
        ("0".to_owned(), format!("{zeros}{all}"))
    } else {
        let point = usize::try_from(point).ok()?;
        if point >= all.len() {
            (format!("{all:0<point$}"), String::new())
        } else {
            (all[..point].to_owned(), all[point..].to_owned())
        }
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    // Keep the fraction as written (`1500.00` stays `1500.00`) unless an exponent moved it.
    let frac = if exponent == 0 {
        frac
    } else {
        frac.trim_end_matches('0').to_owned()
    };
    let zero = int == "0" && frac.bytes().all(|b| b == b'0');
    let sign = if negative && !zero { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// How several values of one attribute become one HubSpot property: semicolon-separated, as
/// HubSpot documents for multiple domains ("use the `hs_additional_domains` field with
/// semicolons separating each domain", <https://developers.hubspot.com/docs/api/crm/companies>)
/// and multi-checkbox values. Empty values are dropped; `None` when nothing is left.
pub fn join_values<S: AsRef<str>>(values: &[S], separator: &str) -> Option<String> {
    let kept: Vec<&str> = values
        .iter()
        .map(|v| v.as_ref().trim())
        .filter(|v| !v.is_empty())
        .collect();
    (!kept.is_empty()).then(|| kept.join(separator))
}

mod html;
pub use html::html_body;
