//! How the terminal client shows things to people: money as `R$ 1.234,56` (from the wire's
//! decimal strings, through integer centavos), instants in local time, and aligned tables.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Signed centavos from a wire amount (`"-20.00"`, `"0.05"`); `None` if it is not one.
pub fn wire_cents(text: &str) -> Option<i64> {
    wide_cents(text).and_then(|cents| i64::try_from(cents).ok())
}

/// A wire amount that may be a sum of many (an audit's totals), as `i128` centavos.
pub fn wide_cents(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (reais, centavos) = unsigned.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(reais) || !digits(centavos) || centavos.len() != 2 || reais.len() > 36 {
        return None;
    }
    let cents = reais.parse::<i128>().ok()? * 100 + centavos.parse::<i128>().ok()?;
    Some(if negative { -cents } else { cents })
}

/// `R$ 1.234,56`; negative amounts as `-R$ 20,00`.
pub fn brl(cents: impl Into<i128>) -> String {
    let cents: i128 = cents.into();
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    let reais = (magnitude / 100).to_string();
    let mut grouped = String::with_capacity(reais.len() + reais.len() / 3);
    for (i, digit) in reais.chars().enumerate() {
        if i > 0 && (reais.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{sign}R$ {grouped},{:02}", magnitude % 100)
}

/// A wire amount shown as `R$ 1.234,56`, or as it came if it is not a wire amount.
pub fn brl_wire(text: &str) -> String {
    wire_cents(text).map_or_else(|| text.to_string(), brl)
}

/// Where instants are shown: the local offset, found once at start-up, or UTC when it cannot
/// be found (and then headers say so).
#[derive(Debug, Clone, Copy)]
pub struct Zone {
    offset: UtcOffset,
    known: bool,
}

impl Zone {
    /// Call before starting threads: finding the local offset reads the system's time zone.
    pub fn local() -> Zone {
        match UtcOffset::current_local_offset() {
            Ok(offset) => Zone {
                offset,
                known: true,
            },
            Err(_) => Zone::utc_fallback(),
        }
    }

    pub fn utc_fallback() -> Zone {
        Zone {
            offset: UtcOffset::UTC,
            known: false,
        }
    }

    pub fn fixed(offset: UtcOffset) -> Zone {
        Zone {
            offset,
            known: true,
        }
    }

    /// The zone's name: `UTC-03:00`, `UTC`, or `UTC; local time unknown`.
    pub fn label(&self) -> String {
        if !self.known {
            return "UTC; local time unknown".into();
        }
        if self.offset.is_utc() {
            return "UTC".into();
        }
        let (h, m, _) = self.offset.as_hms();
        let sign = if self.offset.is_negative() { '-' } else { '+' };
        format!("UTC{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    }

    /// A column header for instants: `date (UTC-03:00)`, or `date (UTC; local time unknown)`.
    pub fn header(&self, what: &str) -> String {
        format!("{what} ({})", self.label())
    }

    /// An RFC 3339 instant as `2026-11-03 14:05:09` in this zone; as it came if unparsable.
    pub fn show(&self, rfc3339: &str) -> String {
        let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        OffsetDateTime::parse(rfc3339, &Rfc3339)
            .ok()
            .and_then(|t| t.to_offset(self.offset).format(&format).ok())
            .unwrap_or_else(|| rfc3339.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table printed with columns padded to their widest cell (counted in characters, so
/// `Depósito` lines up), two spaces apart, no trailing spaces.
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose headers are already formatted strings.
    pub fn with_headers(headers: Vec<String>, align: Vec<Align>) -> Table {
        assert_eq!(headers.len(), align.len(), "one alignment per column");
        Table {
            headers,
            align,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| width(&r[c]))
                    .chain([width(&self.headers[c])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c] - width(cell);
                match self.align[c] {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A statement entry's kind in words.
pub fn entry_kind(kind: &str, lang: crate::amount::Lang) -> String {
    use crate::amount::Lang;
    let text = match (lang, kind) {
        (Lang::En, "opening_deposit") => "opening deposit",
        (Lang::En, "deposit") => "deposit",
        (Lang::En, "withdrawal") => "withdrawal",
        (Lang::En, "transfer_in") => "transfer in",
        (Lang::En, "transfer_out") => "transfer out",
        (Lang::Pt, "opening_deposit") => "depósito inicial",
        (Lang::Pt, "deposit") => "depósito",
        (Lang::Pt, "withdrawal") => "saque",
        (Lang::Pt, "transfer_in") => "Pix recebido",
        (Lang::Pt, "transfer_out") => "Pix enviado",
        (_, other) => other,
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        let table: [(i64, &str); 8] = [
            (0, "R$ 0,00"),
            (5, "R$ 0,05"),
            (1050, "R$ 10,50"),
            (100_000, "R$ 1.000,00"),
            (123_456, "R$ 1.234,56"),
            (99_999_999_999_999, "R$ 999.999.999.999,99"),
            (-2000, "-R$ 20,00"),
            (-123_456_789, "-R$ 1.234.567,89"),
        ];
        for (cents, text) in table {
            assert_eq!(brl(cents), text, "{cents}");
        }
        assert_eq!(brl(i64::MIN).len(), "-R$ 92.233.720.368.547.758,08".len());
        // An audit's sums pass i64::MAX; they read and show exactly.
        let wide = i128::from(i64::MAX) * 3;
        assert_eq!(
            wide_cents(&format!("{}.{:02}", wide / 100, wide % 100)),
            Some(wide)
        );
        assert_eq!(
            wire_cents(&format!("{}.{:02}", wide / 100, wide % 100)),
            None
        );
        assert_eq!(brl(wide), "R$ 276.701.161.105.643.274,21");
    }

    #[test]
    fn wire_amounts() {
        let table = [
            ("10.50", Some(1050)),
            ("-20.00", Some(-2000)),
            ("0.05", Some(5)),
            ("10.5", None),
            ("10", None),
            ("1e3", None),
            ("", None),
            ("-", None),
        ];
        for (text, cents) in table {
            assert_eq!(wire_cents(text), cents, "{text:?}");
        }
        assert_eq!(brl_wire("1234.56"), "R$ 1.234,56");
        assert_eq!(brl_wire("weird"), "weird");
    }

    #[test]
    fn instants() {
        let brasilia = Zone::fixed(UtcOffset::from_hms(-3, 0, 0).unwrap());
        assert_eq!(
            brasilia.show("2026-11-03T17:05:09.123Z"),
            "2026-11-03 14:05:09"
        );
        assert_eq!(brasilia.header("date"), "date (UTC-03:00)");
        let unknown = Zone::utc_fallback();
        assert_eq!(unknown.show("2026-11-03T17:05:09Z"), "2026-11-03 17:05:09");
        assert_eq!(unknown.header("date"), "date (UTC; local time unknown)");
        assert_eq!(Zone::fixed(UtcOffset::UTC).header("date"), "date (UTC)");
        assert_eq!(
            Zone::fixed(UtcOffset::from_hms(5, 30, 0).unwrap()).header("at"),
            "at (UTC+05:30)"
        );
        assert_eq!(brasilia.show("not a date"), "not a date");
    }

    #[test]
    fn tables_align() {
        let mut table = Table::new(&[("kind", Align::Left), ("amount", Align::Right)]);
        table.row(vec!["depósito".into(), "R$ 10,00".into()]);
        table.row(vec!["x".into(), "R$ 1.000,00".into()]);
        let expected = [
            format!("kind{}amount", " ".repeat(11)),
            format!("depósito{}R$ 10,00", " ".repeat(5)),
            format!("x{}R$ 1.000,00", " ".repeat(9)),
        ];
        assert_eq!(table.render(), expected.join("\n") + "\n");
    }
}
