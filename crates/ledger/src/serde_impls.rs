//! Wire forms of the ledger's values: each travels as its canonical text and is parsed (and so
//! validated) again on the way in.

use crate::{AccountNumber, Amount, BankCode, EndToEndId, Stamp};
use serde::de::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! as_text {
    ($type:ty, $parse:expr, $what:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                let parse: fn(&str) -> Option<$type> = $parse;
                parse(&text).ok_or_else(|| {
                    D::Error::custom(format!(concat!("invalid ", $what, ": {:?}"), text))
                })
            }
        }
    };
}

as_text!(Amount, |t| Amount::parse(t).ok(), "amount");
as_text!(AccountNumber, AccountNumber::parse, "account number");
as_text!(BankCode, BankCode::parse, "bank code");
as_text!(EndToEndId, EndToEndId::parse, "end-to-end id");
as_text!(Stamp, Stamp::parse, "clock stamp");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_as_text_and_are_validated_on_the_way_in() {
        let amount = Amount::parse("10.50").unwrap();
        assert_eq!(serde_json::to_string(&amount).unwrap(), "\"10.50\"");
        assert_eq!(serde_json::from_str::<Amount>("\"10.50\"").unwrap(), amount);
        assert!(serde_json::from_str::<Amount>("\"10.5\"").is_err());
        assert!(
            serde_json::from_str::<AccountNumber>("\"100001-3\"").is_err(),
            "a wrong check digit is refused"
        );
        assert_eq!(
            serde_json::from_str::<AccountNumber>("\"100001-2\"")
                .unwrap()
                .to_string(),
            "100001-2"
        );
        assert!(serde_json::from_str::<BankCode>("\"1234\"").is_err());
        let stamp = Stamp {
            physical_ms: 5,
            logical: 2,
        };
        assert_eq!(
            serde_json::from_str::<Stamp>(&serde_json::to_string(&stamp).unwrap()).unwrap(),
            stamp
        );
    }
}
