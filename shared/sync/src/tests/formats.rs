//! The HubSpot formats: instants, numbers, joined values and HTML bodies, at their edges.

use crate::formats::{
    HUBSPOT_BODY_LIMIT, epoch_millis, html_body, hubspot_date, hubspot_timestamp, iso_date,
    iso_instant, join_values, plain_number,
};

const DAY: i64 = 86_400_000;

#[test]
fn dates_are_midnight_utc() {
    assert_eq!(epoch_millis("1970-01-01"), Some(0));
    assert_eq!(epoch_millis("2023-01-01"), Some(1_672_531_200_000));
    assert_eq!(epoch_millis("2000-02-29"), Some(951_782_400_000));
    assert_eq!(epoch_millis("1900-03-01"), Some(-2_203_891_200_000));
    assert_eq!(epoch_millis(" 2023-01-01 "), epoch_millis("2023-01-01"));
}

#[test]
fn every_day_for_two_centuries_is_one_day_after_the_last() {
    // An independent calendar: count days forward and compare with the parser's arithmetic.
    let mut expected = epoch_millis("1901-01-01").expect("start");
    for year in 1901..2101 {
        for month in 1..=12 {
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let days = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            for day in 1..=days {
                let text = format!("{year:04}-{month:02}-{day:02}");
                assert_eq!(epoch_millis(&text), Some(expected), "{text}");
                expected += DAY;
            }
            let past_end = format!("{year:04}-{month:02}-{:02}", days + 1);
            assert_eq!(epoch_millis(&past_end), None, "{past_end}");
        }
    }
}

#[test]
fn attio_timestamps_with_nine_fractional_digits_become_milliseconds() {
    // Attio's documented shape (docs.attio.com, timestamp attribute type).
    assert_eq!(
        epoch_millis("2023-01-01T15:00:00.000000000Z"),
        Some(1_672_585_200_000)
    );
    assert_eq!(
        epoch_millis("2024-12-31T23:59:59.123456789Z"),
        Some(1_735_689_599_123)
    );
    // Truncated, never rounded into the next second, day or year.
    assert_eq!(
        epoch_millis("2024-12-31T23:59:59.999999999Z"),
        Some(epoch_millis("2025-01-01").expect("date") - 1)
    );
    assert_eq!(
        epoch_millis("2023-01-01T15:00:00.5Z"),
        Some(1_672_585_200_500)
    );
    assert_eq!(
        epoch_millis("2023-01-01T15:00:00,25Z"),
        Some(1_672_585_200_250)
    );
    assert_eq!(epoch_millis("2023-01-01T15:00Z"), Some(1_672_585_200_000));
    assert_eq!(epoch_millis("1969-12-31T23:59:59.999Z"), Some(-1));
}

#[test]
fn offsets_are_converted_to_utc_and_no_zone_means_utc() {
    let utc = epoch_millis("2023-01-02T13:00:00.000000000Z");
    // Attio's own example: these all denote the same instant.
    for same in [
        "2023-01-02T15:00:00.000000000+02:00",
        "2023-01-02T15:00:00+0200",
        "2023-01-02T15:00+02",
        "2023-01-02T13:00:00",
        "2023-01-02T03:00:00-10:00",
        "2023-01-01T23:30:00-13:30",
        "2023-01-02 13:00:00z",
    ] {
        assert_eq!(epoch_millis(same), utc, "{same}");
    }
    // A negative offset that crosses midnight into the next UTC day.
    assert_eq!(
        epoch_millis("2023-11-24T23:59:59-10:00"),
        epoch_millis("2023-11-25T09:59:59Z")
    );
}

#[test]
fn long_fractions_and_sub_hour_offsets_keep_their_meaning() {
    // Past nanoseconds the digits are dropped, never rounded up.
    assert_eq!(
        epoch_millis("2024-12-31T23:59:59.99999999999Z"),
        Some(epoch_millis("2025-01-01").expect("date") - 1)
    );
    assert_eq!(
        epoch_millis("2023-01-01T15:00:00.1234567891234Z"),
        Some(1_672_585_200_123)
    );
    // `-00:30` is half an hour behind UTC, not ahead: the sign applies to the minutes too.
    assert_eq!(
        epoch_millis("2023-01-01T10:00:00-00:30"),
        epoch_millis("2023-01-01T10:30:00Z")
    );
    assert_eq!(
        epoch_millis("2023-01-01T10:00:00+05:45"),
        epoch_millis("2023-01-01T04:15:00Z")
    );
    // Before 1970, a fraction still counts forwards from its second.
    assert_eq!(epoch_millis("1969-12-31T23:59:58.5Z"), Some(-1_500));
    assert_eq!(epoch_millis("1969-12-31T20:00:00.250-04:00"), Some(250));
}

#[test]
fn utc_dates_and_instants_print_from_milliseconds() {
    for (ms, date, instant) in [
        (0, "1970-01-01", "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31", "1969-12-31T23:59:59.999Z"),
        (1_709_164_800_000, "2024-02-29", "2024-02-29T00:00:00.000Z"),
        (1_735_689_599_123, "2024-12-31", "2024-12-31T23:59:59.123Z"),
    ] {
        assert_eq!(iso_date(ms), date, "{ms}");
        assert_eq!(iso_instant(ms), instant, "{ms}");
        assert_eq!(epoch_millis(instant), Some(ms), "{instant} reads back");
    }
    // Year 10000 has no ISO date: the number as written, never a made-up five-digit year.
    assert_eq!(iso_date(253_402_300_800_000), "253402300800000");
    assert_eq!(iso_instant(253_402_300_800_000), "253402300800000");
}

#[test]
fn anything_else_is_refused_rather_than_guessed() {
    for bad in [
        "",
        "yesterday",
        "2023",
        "2023-1-01",
        "2023-13-01",
        "2023-00-10",
        "2023-02-29",
        "1900-02-29",
        "2023-01-01T24:00:00Z",
        "2023-01-01T10:60:00Z",
        "2023-01-01T10:00:60Z",
        "2023-01-01T10:00:00+24:00",
        "2023-01-01T10:00:00+02:0",
        "2023-01-01T10:00:00.Z",
        "2023-01-01T10:00.5Z",
        "2023-01-01T10Z",
        "2023-01-01T10:00:00.12a4Z",
        "١٢٣٤-01-01",
        "+2023-01-01",
        "-0001-01-01",
        "20230101",
        "2023-01-01T10:00:00+02:60",
        "2023-01-01T10:00:00Z trailing",
    ] {
        assert_eq!(epoch_millis(bad), None, "{bad:?}");
    }
}

#[test]
fn hubspot_dates_are_the_utc_day_at_midnight() {
    assert_eq!(
        hubspot_timestamp("2026-11-03T10:00:00Z").as_deref(),
        Some("1793700000000")
    );
    // 23:59 in Honolulu is the next day in UTC: HubSpot's date is the UTC date.
    assert_eq!(
        hubspot_date("2023-11-24T23:59:59.999999999-10:00"),
        epoch_millis("2023-11-25").map(|ms| ms.to_string())
    );
    assert_eq!(
        hubspot_date("1969-12-31T12:00:00Z").as_deref(),
        Some("-86400000")
    );
    assert_eq!(hubspot_date("2024-02-29").as_deref(), Some("1709164800000"));
    assert_eq!(hubspot_date("not a date"), None);
}

#[test]
fn numbers_are_plain_decimals() {
    for (input, plain) in [
        ("1500.00", "1500.00"),
        ("12500.5", "12500.5"),
        (" +3 ", "3"),
        ("-0", "0"),
        ("-0.0", "0.0"),
        ("007", "7"),
        (".5", "0.5"),
        ("5.", "5"),
        ("-42.25", "-42.25"),
        ("1e3", "1000"),
        ("1.5E-3", "0.0015"),
        ("2.50e1", "25"),
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
    ] {
        assert_eq!(plain_number(input).as_deref(), Some(plain), "{input}");
    }
    for bad in [
        "", "-", ".", "1,000", "€5", "5 EUR", "NaN", "inf", "1e", "1e999", "--1",
    ] {
        assert_eq!(plain_number(bad), None, "{bad:?}");
    }
}

#[test]
fn several_values_are_joined_with_semicolons_and_blanks_dropped() {
    assert_eq!(
        join_values(&["a.com", " ", "b.com "], ";").as_deref(),
        Some("a.com;b.com")
    );
    assert_eq!(join_values::<&str>(&[], ";"), None);
    assert_eq!(join_values(&["", "  "], ";"), None);
}

#[test]
fn bodies_keep_their_lines_and_escape_markup() {
    assert_eq!(html_body("", "", 1000, "x"), "");
    assert_eq!(html_body("  ", "\n\n", 1000, "x"), "");
    assert_eq!(
        html_body(
            "Call notes",
            "Line one\r\nline two\n\n\n  \nNext <b>para</b> & \"quotes\" 'too'",
            1000,
            "x"
        ),
        "<p><strong>Call notes</strong></p><p>Line one<br>line two</p>\
         <p>Next &lt;b&gt;para&lt;/b&gt; &amp; &quot;quotes&quot; &#39;too&#39;</p>"
    );
    assert_eq!(
        html_body("Grüße 🎉", "日本語\u{0}\ttab", 1000, "x"),
        "<p><strong>Grüße 🎉</strong></p><p>日本語\ttab</p>"
    );
}

#[test]
fn a_body_exactly_at_the_limit_is_whole_and_one_more_character_is_truncated() {
    let limit = 500;
    let fits = "a".repeat(limit - "<p></p>".len());
    assert_eq!(html_body("", &fits, limit, "x"), format!("<p>{fits}</p>"));

    let over = format!("{fits}b");
    let cut = html_body("", &over, limit, "full note in Attio");
    assert!(utf16(&cut) <= limit, "{}", utf16(&cut));
    let (kept, missing) = split_marker(&cut).expect("marker");
    assert!(cut.ends_with("; full note in Attio]</p>"), "{cut}");
    assert!(missing >= 1 && kept.starts_with("<p>aaa") && kept.ends_with("a</p>"));
    assert_eq!(well_formed_text(kept), Ok(over.len() - missing));
}

#[test]
fn truncation_never_splits_an_escape_or_a_tag_and_counts_what_it_left_out() {
    let title = "Q&A <draft>";
    let text = "a&b<c>\"d\"\n🎉é 'x'\n\n".repeat(40);
    let total_chars = title.chars().count() + text.chars().filter(|c| *c != '\n').count();
    for limit in 110..400 {
        let body = html_body(title, &text, limit, "full note in Attio");
        assert!(utf16(&body) <= limit, "limit {limit}: {}", utf16(&body));
        let (kept, missing) = split_marker(&body).unwrap_or_else(|| panic!("{limit}: {body}"));
        let shown = well_formed_text(kept).unwrap_or_else(|e| panic!("{limit}: {e} in {kept}"));
        assert_eq!(shown + missing, total_chars, "limit {limit}: {body}");
    }
}

#[test]
fn a_long_note_fits_hubspots_limit_counted_in_utf16() {
    // Emoji are two UTF-16 units: a body under the limit in chars can be over it for HubSpot.
    let text = "🎉".repeat(40_000);
    let body = html_body("Big", &text, HUBSPOT_BODY_LIMIT, "full note in Attio");
    assert!(utf16(&body) <= HUBSPOT_BODY_LIMIT);
    assert!(utf16(&body) > HUBSPOT_BODY_LIMIT - 200, "{}", utf16(&body));
    let (kept, missing) = split_marker(&body).expect("marker");
    assert_eq!(
        well_formed_text(kept).expect("well formed") + missing,
        40_003
    );
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The body before the marker, and the number the marker says is missing.
fn split_marker(body: &str) -> Option<(&str, usize)> {
    let start = body.rfind("<p>… [truncated: ")?;
    let rest = &body[start + "<p>… [truncated: ".len()..];
    let (n, tail) = rest.split_once(" characters not shown; ")?;
    tail.ends_with("]</p>").then_some(())?;
    Some((&body[..start], n.parse().ok()?))
}

/// The number of text characters in `html`, if every tag is one this module writes, tags nest
/// properly, and every `&` starts a whole entity.
fn well_formed_text(html: &str) -> Result<usize, String> {
    let mut open: Vec<&str> = Vec::new();
    let mut chars = 0;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let end = rest.find('>').ok_or("unclosed tag")?;
            match &rest[..=end] {
                "<p>" => open.push("p"),
                "<strong>" => open.push("strong"),
                "<br>" => {}
                "</p>" if open.pop() == Some("p") => {}
                "</strong>" if open.pop() == Some("strong") => {}
                tag => return Err(format!("unexpected {tag}")),
            }
            rest = &rest[end + 1..];
        } else if c == '&' {
            let entity = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .into_iter()
                .find(|e| rest.starts_with(e))
                .ok_or("split entity")?;
            chars += 1;
            rest = &rest[entity.len()..];
        } else if c == '>' || c == '"' || c == '\'' {
            return Err(format!("unescaped {c}"));
        } else {
            chars += 1;
            rest = &rest[c.len_utf8()..];
        }
    }
    if open.is_empty() {
        Ok(chars)
    } else {
        Err(format!("left open: {open:?}"))
    }
}
