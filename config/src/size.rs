//! Values in systemd's own syntax: memory sizes (`MemoryHigh=`, `MemoryMax=`)
//! and task counts (`TasksMax=`), each absolute, `infinity`, or a percentage.
//!
//! Syntax follows systemd.resource-control(5): "If assigned the special value
//! `infinity`, no limit is applied"; sizes take the base-1024 suffixes K, M, G,
//! T (P and E too); "if the value is suffixed with `%`, the limit is taken
//! relative to the amount of physical memory" (for `TasksMax=`: to the
//! system's maximum number of tasks).
//!
//! On D-Bus an absolute value is a `t` (`u64`, `u64::MAX` meaning infinity)
//! and a percentage goes out as a separate `…Scale` property of type `u`: the
//! fraction scaled to `u32::MAX` (systemd `UINT32_SCALE_FROM_PERMYRIAD`,
//! `src/basic/percent-util.h`), so `50%` is `2147483648`.

use std::fmt;

/// A memory limit or task count as systemd accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// An absolute amount: bytes for memory, a count for tasks.
    Absolute(u64),
    /// A share of the host's total, in permyriad (1/10000): `5000` is 50%.
    Permyriad(u32),
    /// No limit.
    Infinity,
}

impl Limit {
    /// The `u32` systemd's `…Scale` properties take for a percentage:
    /// `permyriad × u32::MAX / 10000`, rounded to nearest.
    pub fn scale(permyriad: u32) -> u32 {
        let v = (u64::from(permyriad) * u64::from(u32::MAX) + 5000) / 10000;
        u32::try_from(v).unwrap_or(u32::MAX)
    }

    /// The value as a D-Bus property of the limit named `name` (`MemoryHigh`,
    /// `MemoryMax`, `TasksMax`): `(name, u64)` for an absolute value or
    /// infinity (`u64::MAX`), `(name + "Scale", u32)` for a percentage.
    pub fn property(&self, name: &str) -> (String, PropertyValue) {
        match *self {
            Limit::Absolute(n) => (name.to_owned(), PropertyValue::U64(n)),
            Limit::Infinity => (name.to_owned(), PropertyValue::U64(u64::MAX)),
            Limit::Permyriad(p) => (format!("{name}Scale"), PropertyValue::U32(Self::scale(p))),
        }
    }
}

/// The D-Bus type of a limit property: `t` or `u`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyValue {
    /// D-Bus `t`.
    U64(u64),
    /// D-Bus `u`.
    U32(u32),
}

impl fmt::Display for Limit {
    /// systemd's spelling: bytes/count as a plain number, `infinity`, or a
    /// percentage with up to two decimals (`12.5%`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Limit::Absolute(n) => write!(f, "{n}"),
            Limit::Infinity => f.write_str("infinity"),
            Limit::Permyriad(p) if p % 100 == 0 => write!(f, "{}%", p / 100),
            Limit::Permyriad(p) if p % 10 == 0 => write!(f, "{}.{}%", p / 100, (p % 100) / 10),
            Limit::Permyriad(p) => write!(f, "{}.{:02}%", p / 100, p % 100),
        }
    }
}

/// Parses `infinity` or a percentage (`50%`, `12.5%`, at most two decimals,
/// 0–100%); `None` when `s` is neither, `Some(Err)` when it is a malformed
/// percentage.
fn parse_special(s: &str) -> Option<Result<Limit, String>> {
    if s == "infinity" {
        return Some(Ok(Limit::Infinity));
    }
    let num = s.strip_suffix('%')?;
    let bad = || format!("`{s}` is not a percentage from 0% to 100% (at most two decimals)");
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (num.contains('.') && frac.is_empty())
    {
        return Some(Err(bad()));
    }
    let Ok(int) = int.parse::<u32>() else {
        return Some(Err(bad()));
    };
    let frac: u32 = format!("{frac:0<2}").parse().unwrap_or(0);
    match int.checked_mul(100).and_then(|v| v.checked_add(frac)) {
        Some(p) if p <= 10000 => Some(Ok(Limit::Permyriad(p))),
        _ => Some(Err(bad())),
    }
}

/// Parses a memory size: bytes with an optional base-1024 suffix
/// (`512M`, `1.5G`, `8G`, `1T`, `4096`, `4096B`), `infinity`, or a percentage
/// of physical memory (`50%`). Returns a one-line reason on failure.
pub fn parse_size(s: &str) -> Result<Limit, String> {
    if let Some(r) = parse_special(s) {
        return r;
    }
    let bad = |why: &str| {
        format!(
            "`{s}` is not a size: {why} (use bytes with an optional K, M, G or T suffix, \
             e.g. `512M` or `1.5G`, a percentage such as `50%`, or `infinity`)"
        )
    };
    if s.starts_with('-') {
        return Err(bad("sizes cannot be negative"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let shift = match suffix {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => return Err(bad(&format!("unknown unit `{suffix}`"))),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || (num.contains('.') && frac.is_empty()) || frac.contains('.') {
        return Err(bad("no number"));
    }
    if !frac.is_empty() && shift == 0 {
        return Err(bad("a byte count has no fraction"));
    }
    let unit: u128 = 1 << shift;
    let int: u128 = int.parse().map_err(|_| bad("too large"))?;
    // Fractions as systemd parse_size does: digits after the point scaled
    // by the unit, rounded down to whole bytes.
    let frac_bytes = if frac.is_empty() {
        0
    } else {
        let digits = frac.len().min(18);
        let f: u128 = frac[..digits].parse().map_err(|_| bad("bad fraction"))?;
        f * unit / 10u128.pow(digits as u32)
    };
    let total = int
        .checked_mul(unit)
        .and_then(|v| v.checked_add(frac_bytes))
        .filter(|&v| v < u128::from(u64::MAX))
        .ok_or_else(|| bad("too large"))?;
    Ok(Limit::Absolute(total as u64))
}

/// Parses a task count: a positive number, `infinity`, or a percentage of the
/// system's task limit (`10%`).
pub fn parse_tasks(s: &str) -> Result<Limit, String> {
    if let Some(r) = parse_special(s) {
        return r;
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 && n < u64::MAX && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Limit::Absolute(n))
        }
        _ => Err(format!(
            "`{s}` is not a task count: use a positive number, a percentage such as `10%`, \
             or `infinity`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_systemd_units() {
        for (text, want) in [
            ("0", Limit::Absolute(0)),
            ("4096", Limit::Absolute(4096)),
            ("4096B", Limit::Absolute(4096)),
            ("1K", Limit::Absolute(1024)),
            ("512M", Limit::Absolute(512 << 20)),
            ("8G", Limit::Absolute(8 << 30)),
            ("1.5G", Limit::Absolute(3 << 29)),
            ("2T", Limit::Absolute(2 << 40)),
            ("infinity", Limit::Infinity),
            ("50%", Limit::Permyriad(5000)),
            ("12.5%", Limit::Permyriad(1250)),
            ("0.01%", Limit::Permyriad(1)),
            ("100%", Limit::Permyriad(10000)),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, needle) in [
            ("", "no number"),
            ("G", "no number"),
            ("12X", "unknown unit `X`"),
            ("12 G", "unknown unit ` G`"),
            ("1g", "unknown unit `g`"),
            ("1.G", "no number"),
            ("1.2.3G", "no number"),
            ("1.5", "no fraction"),
            ("-1G", "cannot be negative"),
            ("16E", "too large"),
            ("101%", "not a percentage"),
            ("1.234%", "not a percentage"),
            ("x%", "not a percentage"),
            ("Infinity", "unknown unit"),
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            if !text.ends_with('%') {
                assert!(e.contains("e.g. `512M`"), "{e}");
            }
        }
    }

    #[test]
    fn tasks_accept_counts_percentages_and_infinity() {
        assert_eq!(parse_tasks("4096"), Ok(Limit::Absolute(4096)));
        assert_eq!(parse_tasks("10%"), Ok(Limit::Permyriad(1000)));
        assert_eq!(parse_tasks("infinity"), Ok(Limit::Infinity));
        for bad in ["0", "-1", "1K", "", "+5"] {
            assert!(
                parse_tasks(bad).unwrap_err().contains("task count"),
                "{bad}"
            );
        }
    }

    #[test]
    fn percentages_scale_like_systemd() {
        // UINT32_SCALE_FROM_PERMYRIAD: 100% is UINT32_MAX, 50% rounds up.
        assert_eq!(Limit::scale(10000), u32::MAX);
        assert_eq!(Limit::scale(5000), 2_147_483_648);
        assert_eq!(Limit::scale(0), 0);
        assert_eq!(
            Limit::Permyriad(2500).property("MemoryHigh"),
            (
                "MemoryHighScale".to_owned(),
                PropertyValue::U32(1_073_741_824)
            )
        );
        assert_eq!(
            Limit::Infinity.property("MemoryMax"),
            ("MemoryMax".to_owned(), PropertyValue::U64(u64::MAX))
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["4096", "infinity", "50%", "12.5%", "0.01%"] {
            let l = parse_size(text).unwrap();
            assert_eq!(l.to_string(), text);
            assert_eq!(parse_size(&l.to_string()), Ok(l));
        }
    }
}
