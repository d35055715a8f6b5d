//! A site's accent colour, and the shades of it that stay readable (WCAG AA, 4.5:1) as link
//! text and button background on Herald's light and dark backgrounds. Uses `domain` only.

use std::fmt;
use std::str::FromStr;

/// An sRGB colour written as `#rrggbb` (or `#rgb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

/// The contrast ratio WCAG AA asks of body text.
pub const AA: f64 = 4.5;

/// The lightest background accent text sits on in the light scheme (the emails' outer
/// background; pages and cards are lighter still).
pub const LIGHT_BACKGROUND: Colour = Colour::rgb(0xf3, 0xf4, 0xf2);
/// The lightest background accent text sits on in the dark scheme (the cards).
pub const DARK_BACKGROUND: Colour = Colour::rgb(0x1c, 0x21, 0x24);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a colour: write it as #rrggbb, such as #0b6e4f")]
pub struct ColourError(String);

impl Colour {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b }
    }

    /// Relative luminance (WCAG 2.x).
    pub fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.r) + 0.7152 * channel(self.g) + 0.0722 * channel(self.b)
    }

    /// The WCAG contrast ratio between two colours, from 1 to 21.
    pub fn contrast(self, other: Colour) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// This colour mixed with `toward` by `amount` (0: unchanged, 1: `toward`).
    fn mix(self, toward: Colour, amount: f64) -> Colour {
        let channel = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * amount).round() as u8;
        Colour::rgb(
            channel(self.r, toward.r),
            channel(self.g, toward.g),
            channel(self.b, toward.b),
        )
    }

    /// The least change of this colour toward black (`darker`) or white that reaches
    /// `ratio` against `background`; the colour itself when it already does.
    fn readable_on(self, background: Colour, darker: bool) -> Colour {
        let toward = if darker {
            Colour::rgb(0, 0, 0)
        } else {
            Colour::rgb(255, 255, 255)
        };
        (0..=100)
            .map(|step| self.mix(toward, f64::from(step) / 100.0))
            .find(|c| c.contrast(background) >= AA + 0.05)
            .unwrap_or(toward)
    }

    /// The shade used as text and button background in the light scheme.
    pub fn for_light(self) -> Colour {
        self.readable_on(LIGHT_BACKGROUND, true)
    }

    /// The shade used as text and button background in the dark scheme.
    pub fn for_dark(self) -> Colour {
        self.readable_on(DARK_BACKGROUND, false)
    }
}

impl FromStr for Colour {
    type Err = ColourError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ColourError(s.to_owned());
        let hex = s.trim().strip_prefix('#').ok_or_else(error)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error());
        }
        let digit = |i: usize, len: usize| u8::from_str_radix(&hex[i..i + len], 16).map_err(|_| error());
        match hex.len() {
            6 => Ok(Colour::rgb(digit(0, 2)?, digit(2, 2)?, digit(4, 2)?)),
            3 => Ok(Colour::rgb(digit(0, 1)? * 17, digit(1, 1)? * 17, digit(2, 1)? * 17)),
            _ => Err(error()),
        }
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }
}

impl<'de> serde::Deserialize<'de> for Colour {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Colour {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_long_and_short_forms() {
        assert_eq!("#0b6e4f".parse(), Ok(Colour::rgb(0x0b, 0x6e, 0x4f)));
        assert_eq!("#FFF".parse(), Ok(Colour::rgb(255, 255, 255)));
        for bad in ["0b6e4f", "#0b6e4", "#ggg", "green", "#0b6e4f0", ""] {
            let error = bad.parse::<Colour>().unwrap_err().to_string();
            assert!(error.contains("#rrggbb"), "{bad}: {error}");
        }
        assert_eq!(Colour::rgb(0x0b, 0x6e, 0x4f).to_string(), "#0b6e4f");
    }

    #[test]
    fn contrast_matches_published_figures() {
        let white = Colour::rgb(255, 255, 255);
        let black = Colour::rgb(0, 0, 0);
        assert!((white.contrast(black) - 21.0).abs() < 1e-9);
        // #767676 on white is the classic 4.54:1.
        let grey: Colour = "#767676".parse().unwrap();
        assert!((grey.contrast(white) - 4.54).abs() < 0.01);
    }

    #[test]
    fn a_readable_accent_is_kept_as_it_is() {
        let green: Colour = "#0b6e4f".parse().unwrap();
        assert_eq!(green.for_light(), green);
    }

    proptest! {
        #[test]
        fn every_accent_gets_readable_shades(r: u8, g: u8, b: u8) {
            let accent = Colour::rgb(r, g, b);
            let light = accent.for_light();
            let dark = accent.for_dark();
            prop_assert!(light.contrast(LIGHT_BACKGROUND) >= AA, "{accent} -> {light}");
            prop_assert!(light.contrast(Colour::rgb(255, 255, 255)) >= AA);
            prop_assert!(dark.contrast(DARK_BACKGROUND) >= AA, "{accent} -> {dark}");
            prop_assert!(dark.contrast(Colour::rgb(0x15, 0x19, 0x1c)) >= AA);
        }
    }
}
