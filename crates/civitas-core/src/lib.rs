//! Domain types of civitas and the rules of the Chinese identifiers it validates.
//!
//! Everything here is pure: no I/O, no clocks, no randomness. Types validate on construction, so a
//! value of type [`Uscc`] or [`RegionCode`] is known to be well-formed wherever it travels.

pub mod access;
pub mod authz;
pub mod catalog;
mod ids;
pub mod problems;
mod region;
pub mod registry;
pub mod service;

pub use ids::{CitizenId, Code, DeviceCode, NodeCode, Uscc};
pub use region::{Region, RegionCode};

#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use utoipa;
}

/// A value that breaks a rule of its type. `field` is filled in by the caller that knows which input
/// field the value came from; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    pub message: String,
}

impl InvalidValue {
    pub fn new(message: impl Into<String>) -> InvalidValue {
        InvalidValue {
            message: message.into(),
        }
    }
}

/// Implements `Serialize`/`Deserialize` as a string for a newtype that has `as_str` and `parse`.
macro_rules! string_newtype_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                <$ty>::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::InvalidValue;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                <$ty>::parse(text)
            }
        }
    };
}
pub(crate) use string_newtype_serde;

/// Implements string conversion and serde for a fieldless enum from a list of `Variant => "name"`.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Result<$name, $crate::InvalidValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::InvalidValue::new(format!(
                        "unknown value {:?}, expected one of: {}",
                        text,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::InvalidValue;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::parse(text)
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as $crate::__private::serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&text).map_err($crate::__private::serde::de::Error::custom)
            }
        }

        impl $crate::__private::utoipa::PartialSchema for $name {
            fn schema() -> $crate::__private::utoipa::openapi::RefOr<$crate::__private::utoipa::openapi::schema::Schema> {
                use $crate::__private::utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl $crate::__private::utoipa::ToSchema for $name {}
    };
}
