//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs). Each one is
//! a thin door to the function the node itself calls, so what is fuzzed is the production path.

use crate::error::ApiError;
use serde::de::DeserializeOwned;

/// The request body parser behind `ApiJson`: the body into its type, or the problem it answers
/// (`malformed_json` 400, `invalid_request` 422).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::extract::parse(bytes)
}
