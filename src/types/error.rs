use super::ssz::DecodeError;

/// Errors of the `types` module.
#[derive(Debug, thiserror::Error)]
pub enum TypeError {
    /// A preset name other than `mainnet` or `minimal`.
    #[error("unknown preset `{0}` (expected `mainnet` or `minimal`)")]
    UnknownPreset(String),
    /// A type name that is not one of [`super::ssz_static::TYPE_NAMES`].
    #[error("unknown SSZ type `{0}`")]
    UnknownType(String),
    /// The bytes are not a valid SSZ encoding of the type.
    #[error("cannot decode {type_name}: {source}")]
    Decode {
        type_name: String,
        #[source]
        source: DecodeError,
    },
    /// A value could not be encoded (e.g. a list over its bound).
    #[error("cannot encode {type_name}: {message}")]
    Encode { type_name: String, message: String },
    /// A value could not be merkleized.
    #[error("cannot compute the hash tree root of {type_name}: {message}")]
    Merkleize { type_name: String, message: String },
    /// The raw snappy block is corrupt or its declared length is over the cap.
    #[error("cannot decompress snappy data: {0}")]
    Snappy(String),
}
