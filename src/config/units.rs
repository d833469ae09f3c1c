//! The units operators write values in: durations (`"15m"`) and sizes (`"20MiB"`).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// `"15m"` as (15, "m"): the leading digits and what follows them, trimmed. None when
/// there are no digits or too many.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    Some((digits.parse().ok()?, unit.trim()))
}

/// A duration written as `"90s"`, `"15m"`, `"4h"`, `"60d"` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (n, unit) = number_and_unit(text)
            .ok_or_else(|| format!("`{text}` is not a duration (examples: 30s, 15m, 4h, 60d)"))?;
        let factor = match unit {
            "" | "s" => 1,
            "ms" => return Ok(Self(Duration::from_millis(n))),
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{text}` (use ms, s, m, h or d)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(|s| Self(Duration::from_secs(s)))
            .ok_or_else(|| format!("duration `{text}` is too large"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let s = self.0.as_secs();
        match s {
            0 => write!(f, "0s"),
            s if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            s if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            s if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A size written as a number of bytes or `"20MiB"`, `"512KiB"`, `"1GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (n, unit) = number_and_unit(text)
            .ok_or_else(|| format!("`{text}` is not a size (examples: 4096, 512KiB, 20MiB)"))?;
        let factor: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("unknown size unit `{other}` in `{text}`")),
        };
        n.checked_mul(factor)
            .map(Self)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }

    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            HumanDuration::parse("15m").unwrap().0,
            Duration::from_secs(900)
        );
        assert_eq!(
            HumanDuration::parse("4h").unwrap().0,
            Duration::from_secs(14_400)
        );
        assert_eq!(HumanDuration::parse("60d").unwrap().to_string(), "60d");
        assert_eq!(HumanDuration::parse("90").unwrap().to_string(), "90s");
        assert_eq!(HumanDuration::parse("250ms").unwrap().to_string(), "250ms");
        assert!(HumanDuration::parse("15 parsecs").is_err());
        assert!(HumanDuration::parse("").is_err());
        assert!(HumanDuration::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("20MiB").unwrap().0, 20 * 1024 * 1024);
        assert_eq!(ByteSize::parse("4096").unwrap().0, 4096);
        assert_eq!(ByteSize::parse("1GB").unwrap().0, 1_000_000_000);
        assert!(ByteSize::parse("12 apples").is_err());
    }
}
