//! Phone numbers as people type them, into E.164, with libphonenumber's metadata (the
//! `phonenumber` crate): a number without a country code is read in the tenant's region.

use phonenumber::Mode;
use phonenumber::country::Id;

/// Why a phone number was refused; the message names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is not a phone number")]
    NotANumber,
    #[error("is not a valid number for its country")]
    Invalid,
    #[error("has no country code (start it with +), and the tenant has no default region")]
    NoRegion,
}

/// `input` in E.164 (`+34600123456`), read in `region` (ISO 3166 alpha-2) when it has no
/// country code.
pub fn normalize(input: &str, region: Option<&str>) -> Result<String, PhoneError> {
    let trimmed = input.trim();
    // 00 is the international prefix of most of the world, as people type it.
    let trimmed = match trimmed.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => trimmed.to_string(),
    };
    let international = trimmed.starts_with('+');
    let region = match region.map(str::parse::<Id>) {
        Some(Ok(id)) => Some(id),
        _ if international => None,
        _ => return Err(PhoneError::NoRegion),
    };
    let number = phonenumber::parse(region, &trimmed).map_err(|_| PhoneError::NotANumber)?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::Invalid);
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// Whether `phone` is written in E.164 (`+` and 7 to 15 digits, the first not 0), as upstream
/// systems hand numbers over; unlike [`normalize`] it does not judge whether the number exists
/// (upstream is the record of that).
pub fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_several_countries_and_formats_become_e164() {
        let cases = [
            ("+34 600 12 34 56", None, "+34600123456"),
            ("0034 600-123-456", None, "+34600123456"),
            ("600 123 456", Some("ES"), "+34600123456"),
            ("+44 7946 001800", None, "+447946001800"),
            ("07946 001800", Some("GB"), "+447946001800"),
            ("0151 12345678", Some("DE"), "+4915112345678"),
            ("(201) 555-0123", Some("US"), "+12015550123"),
            ("+55 11 91234-5678", Some("DE"), "+5511912345678"),
            ("+91 98765 43210", None, "+919876543210"),
        ];
        for (input, region, want) in cases {
            assert_eq!(
                normalize(input, region).as_deref(),
                Ok(want),
                "{input} in {region:?}"
            );
        }
    }

    #[test]
    fn what_is_not_a_valid_number_is_refused_with_the_reason() {
        assert_eq!(
            normalize("call me", Some("ES")),
            Err(PhoneError::NotANumber)
        );
        assert_eq!(normalize("+34 12", None), Err(PhoneError::Invalid));
        assert_eq!(normalize("+1 555 0100", None), Err(PhoneError::Invalid));
        assert_eq!(normalize("600 123 456", None), Err(PhoneError::NoRegion));
        assert_eq!(
            normalize("600 123 456", Some("ZZ")),
            Err(PhoneError::NoRegion)
        );
    }

    #[test]
    fn e164_is_a_plus_and_7_to_15_digits() {
        assert!(is_e164("+447700900777"));
        assert!(!is_e164("447700900777"));
        assert!(!is_e164("+0447700900777"));
        assert!(!is_e164("+44 7700 900777"));
        assert!(!is_e164("+123456"));
        assert!(!is_e164("+1234567890123456"));
    }
}
