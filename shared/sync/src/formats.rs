//! Attio values in the exact formats HubSpot accepts: instants as epoch milliseconds, amounts
//! as plain decimal numbers, multi-values joined with semicolons, and note/task bodies as
//! escaped HTML under HubSpot's length limit.
//!
//! Hand-written rather than a date crate: the inputs are the few ISO 8601 shapes Attio
//! documents (a date, or a UTC instant with up to nine fractional digits), the output is one
//! integer, and the civil-date arithmetic is ten lines; every edge is tested below.

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
/// - `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with `Z`, `±HH:MM`, `±HHMM` or no zone (UTC, as Attio
///   assumes). Fractions of any length (Attio sends nine digits) are truncated to milliseconds.
///
/// `None` for anything else, or an impossible date or time.
pub fn epoch_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let days = parse_date(date)?;
    let Some(rest) = rest else {
        return Some(days * DAY_MS);
    };
    let (time, offset_minutes) = split_zone(rest)?;
    let time_ms = parse_time(time)?;
    Some(days * DAY_MS + time_ms - offset_minutes * 60_000)
}

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
/// written as when a HubSpot date property flows back (two-way sync).
pub fn iso_date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC instant `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds: an Attio timestamp
/// attribute written from a HubSpot datetime property.
pub fn iso_instant(ms: i64) -> String {
    let in_day = ms.rem_euclid(DAY_MS);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        iso_date(ms),
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// The inverse of `days_from_civil` (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (digits(y)?, digits(m)?, digits(d)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Splits the zone off a time: `Z` or none is UTC; `±HH:MM` / `±HHMM` / `±HH` east of UTC.
fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        return Some((time, 0));
    }
    let Some(i) = rest.rfind(['+', '-']) else {
        return Some((rest, 0));
    };
    let (time, zone) = rest.split_at(i);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let zone = zone[1..].replace(':', "");
    let (h, m) = match zone.len() {
        2 => (digits(&zone)?, 0),
        4 => (digits(&zone[..2])?, digits(&zone[2..])?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some((time, sign * (h * 60 + m)))
}

/// Milliseconds into the day of `HH:MM[:SS[.fraction]]`.
fn parse_time(time: &str) -> Option<i64> {
    let (clock, fraction) = match time.split_once(['.', ',']) {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let mut parts = clock.split(':');
    let (h, m) = (parts.next()?, parts.next()?);
    let s = parts.next();
    if parts.next().is_some() || h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (digits(h)?, digits(m)?);
    let s = match s {
        Some(s) if s.len() == 2 => digits(s)?,
        Some(_) => return None,
        None if fraction.is_some() => return None,
        None => 0,
    };
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => return None,
        // Truncated, not rounded: 23:59:59.9999 stays on its day.
        Some(f) => format!("{f:0<3}")[..3].parse::<i64>().ok()?,
    };
    Some(((h * 60 + m) * 60 + s) * 1000 + millis)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
