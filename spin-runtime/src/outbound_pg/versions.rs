//! Conversions between the PostgreSQL interface versions: 2.0.0 and 3.0.0 parameters up
//! to 4.2.0, 4.2.0 results and errors down, as Spin converts them.
//!
//! Going down, a value or column type the older interface has no case for becomes
//! `unsupported` / `other`, and 4.x's structured query error becomes its text.

use super::{v2_types, v3, v4};

impl From<v3::ParameterValue> for v4::ParameterValue {
    fn from(p: v3::ParameterValue) -> Self {
        use v3::ParameterValue as P;
        match p {
            P::Boolean(v) => Self::Boolean(v),
            P::Int8(v) => Self::Int8(v),
            P::Int16(v) => Self::Int16(v),
            P::Int32(v) => Self::Int32(v),
            P::Int64(v) => Self::Int64(v),
            P::Floating32(v) => Self::Floating32(v),
            P::Floating64(v) => Self::Floating64(v),
            P::Str(v) => Self::Str(v),
            P::Binary(v) => Self::Binary(v),
            P::Date(v) => Self::Date(v),
            P::Time(v) => Self::Time(v),
            P::Datetime(v) => Self::Datetime(v),
            P::Timestamp(v) => Self::Timestamp(v),
            P::DbNull => Self::DbNull,
        }
    }
}

impl TryFrom<v2_types::ParameterValue> for v4::ParameterValue {
    type Error = v2_types::Error;

    fn try_from(p: v2_types::ParameterValue) -> Result<Self, Self::Error> {
        use v2_types::ParameterValue as P;
        Ok(match p {
            P::Boolean(v) => Self::Boolean(v),
            P::Int8(v) => Self::Int8(v),
            P::Int16(v) => Self::Int16(v),
            P::Int32(v) => Self::Int32(v),
            P::Int64(v) => Self::Int64(v),
            P::Floating32(v) => Self::Floating32(v),
            P::Floating64(v) => Self::Floating64(v),
            P::Str(v) => Self::Str(v),
            P::Binary(v) => Self::Binary(v),
            P::DbNull => Self::DbNull,
            P::Uint8(_) | P::Uint16(_) | P::Uint32(_) | P::Uint64(_) => {
                return Err(v2_types::Error::ValueConversionFailed(
                    "Postgres does not support unsigned integers".into(),
                ))
            }
        })
    }
}

fn query_error_text(e: v4::QueryError) -> String {
    match e {
        v4::QueryError::Text(t) => t,
        v4::QueryError::DbError(e) => e.as_text,
    }
}

impl From<v4::Error> for v3::Error {
    fn from(e: v4::Error) -> Self {
        match e {
            v4::Error::ConnectionFailed(m) => Self::ConnectionFailed(m),
            v4::Error::BadParameter(m) => Self::BadParameter(m),
            v4::Error::QueryFailed(q) => Self::QueryFailed(query_error_text(q)),
            v4::Error::ValueConversionFailed(m) => Self::ValueConversionFailed(m),
            v4::Error::Other(m) => Self::Other(m),
        }
    }
}

impl From<v4::Error> for v2_types::Error {
    fn from(e: v4::Error) -> Self {
        match e {
            v4::Error::ConnectionFailed(m) => Self::ConnectionFailed(m),
            v4::Error::BadParameter(m) => Self::BadParameter(m),
            v4::Error::QueryFailed(q) => Self::QueryFailed(query_error_text(q)),
            v4::Error::ValueConversionFailed(m) => Self::ValueConversionFailed(m),
            v4::Error::Other(m) => Self::Other(m),
        }
    }
}

impl From<v4::DbDataType> for v3::DbDataType {
    fn from(t: v4::DbDataType) -> Self {
        use v4::DbDataType as T;
        match t {
            T::Boolean => Self::Boolean,
            T::Int8 => Self::Int8,
            T::Int16 => Self::Int16,
            T::Int32 => Self::Int32,
            T::Int64 => Self::Int64,
            T::Floating32 => Self::Floating32,
            T::Floating64 => Self::Floating64,
            T::Str => Self::Str,
            T::Binary => Self::Binary,
            T::Date => Self::Date,
            T::Time => Self::Time,
            T::Datetime => Self::Datetime,
            T::Timestamp => Self::Timestamp,
            _ => Self::Other,
        }
    }
}

impl From<v4::DbValue> for v3::DbValue {
    fn from(v: v4::DbValue) -> Self {
        use v4::DbValue as V;
        match v {
            V::Boolean(v) => Self::Boolean(v),
            V::Int8(v) => Self::Int8(v),
            V::Int16(v) => Self::Int16(v),
            V::Int32(v) => Self::Int32(v),
            V::Int64(v) => Self::Int64(v),
            V::Floating32(v) => Self::Floating32(v),
            V::Floating64(v) => Self::Floating64(v),
            V::Str(v) => Self::Str(v),
            V::Binary(v) => Self::Binary(v),
            V::Date(v) => Self::Date(v),
            V::Time(v) => Self::Time(v),
            V::Datetime(v) => Self::Datetime(v),
            V::Timestamp(v) => Self::Timestamp(v),
            V::DbNull => Self::DbNull,
            _ => Self::Unsupported,
        }
    }
}

impl From<v4::RowSet> for v3::RowSet {
    fn from(r: v4::RowSet) -> Self {
        Self {
            columns: r
                .columns
                .into_iter()
                .map(|c| v3::Column {
                    name: c.name,
                    data_type: c.data_type.into(),
                })
                .collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}

impl From<v4::DbDataType> for v2_types::DbDataType {
    fn from(t: v4::DbDataType) -> Self {
        use v4::DbDataType as T;
        match t {
            T::Boolean => Self::Boolean,
            T::Int8 => Self::Int8,
            T::Int16 => Self::Int16,
            T::Int32 => Self::Int32,
            T::Int64 => Self::Int64,
            T::Floating32 => Self::Floating32,
            T::Floating64 => Self::Floating64,
            T::Str => Self::Str,
            T::Binary => Self::Binary,
            _ => Self::Other,
        }
    }
}

impl From<v4::DbValue> for v2_types::DbValue {
    fn from(v: v4::DbValue) -> Self {
        use v4::DbValue as V;
        match v {
            V::Boolean(v) => Self::Boolean(v),
            V::Int8(v) => Self::Int8(v),
            V::Int16(v) => Self::Int16(v),
            V::Int32(v) => Self::Int32(v),
            V::Int64(v) => Self::Int64(v),
            V::Floating32(v) => Self::Floating32(v),
            V::Floating64(v) => Self::Floating64(v),
            V::Str(v) => Self::Str(v),
            V::Binary(v) => Self::Binary(v),
            V::DbNull => Self::DbNull,
            _ => Self::Unsupported,
        }
    }
}

impl From<v4::RowSet> for v2_types::RowSet {
    fn from(r: v4::RowSet) -> Self {
        Self {
            columns: r
                .columns
                .into_iter()
                .map(|c| v2_types::Column {
                    name: c.name,
                    data_type: c.data_type.into(),
                })
                .collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_versions_see_unsupported_for_newer_types() {
        let rows = v4::RowSet {
            columns: vec![v4::Column {
                name: "id".into(),
                data_type: v4::DbDataType::Uuid,
            }],
            rows: vec![vec![v4::DbValue::Uuid("x".into()), v4::DbValue::DbNull]],
        };
        let v2: v2_types::RowSet = rows.clone().into();
        assert!(matches!(
            v2.columns[0].data_type,
            v2_types::DbDataType::Other
        ));
        assert!(matches!(v2.rows[0][0], v2_types::DbValue::Unsupported));
        assert!(matches!(v2.rows[0][1], v2_types::DbValue::DbNull));
        let v3: v3::RowSet = rows.into();
        assert!(matches!(v3.rows[0][0], v3::DbValue::Unsupported));
        let unsigned: Result<v4::ParameterValue, _> = v2_types::ParameterValue::Uint8(1).try_into();
        assert!(matches!(
            unsigned,
            Err(v2_types::Error::ValueConversionFailed(_))
        ));
    }
}
