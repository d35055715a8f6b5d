//! Enums that are a closed set of lowercase words: parsed from and shown as those words,
//! and stored as them in a text column (bound and read directly by sqlx on either backend).
//!
//! The database checks each such column against the same set of words (see the
//! `state_checks` migration), so a word written by hand that is not one of them is refused.

/// A word that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what}; use one of: {choices}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub choices: &'static str,
}

/// Gives an enum of unit variants its words: `ALL`, `as_str`, `FromStr` (trimmed,
/// case-insensitive), `Display`, and the sqlx `Type`, `Encode` and `Decode` of a text column
/// on every backend (the same as `str`'s, so PostgreSQL binds it as `text` without looking
/// the type up). Decoding a word that is not one of them is an error that names it.
macro_rules! word_enum {
    ($ty:ident, $what:literal, $($variant:ident => $word:literal),+) => {
        impl $ty {
            /// Every value, in the order declared.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The word that stands for this value, in text and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),+
                }
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::domain::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($word => Ok($ty::$variant),)+
                    _ => Err($crate::domain::UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        choices: concat!($($word, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl<DB: ::sqlx::Database> ::sqlx::Type<DB> for $ty
        where
            str: ::sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as ::sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as ::sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: ::sqlx::Database> ::sqlx::Encode<'q, DB> for $ty
        where
            &'q str: ::sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as ::sqlx::Database>::ArgumentBuffer,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&'q str as ::sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }

            fn size_hint(&self) -> usize {
                self.as_str().len()
            }
        }

        impl<'r, DB: ::sqlx::Database> ::sqlx::Decode<'r, DB> for $ty
        where
            &'r str: ::sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as ::sqlx::Database>::ValueRef<'r>) -> Result<Self, ::sqlx::error::BoxDynError> {
                let word = <&'r str as ::sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(word.parse::<$ty>()?)
            }
        }
    };
}
pub(super) use word_enum;
