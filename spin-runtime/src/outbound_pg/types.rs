//! Postgres values ↔ `spin:postgres/postgres@4.2.0` values, as Spin's `outbound-pg` maps
//! them.
//!
//! This module owns the type mapping only (no connections): which Postgres type is which
//! `db-data-type`, how a column value becomes a `db-value` and how a `parameter-value`
//! is sent. Dates, times and datetimes go through chrono (datetimes are UTC without a
//! zone; `timestamptz` columns are read in UTC), `timestamp` parameters are Unix seconds
//! sent as `timestamptz`, decimals through rust_decimal, ranges through postgres_range.
//! A column of any other type is `other(<type name>)` with its raw wire bytes as the
//! `unsupported` value. A null parameter is sent as a typeless SQL NULL.

use std::error::Error as StdError;

use bytes::{Buf, BufMut, BytesMut};
use postgres_range::{BoundSided, BoundType, Normalizable, Range, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;

use super::v4::{self, DbDataType, DbValue, ParameterValue, RangeBoundKind};

type BoxError = Box<dyn StdError + Sync + Send>;

/// The `db-data-type` of a Postgres column type.
pub(super) fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::BYTEA => DbDataType::Binary,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_string()),
    }
}

/// One row as `db-value`s.
pub(super) fn row(row: &Row) -> Result<Vec<DbValue>, v4::Error> {
    (0..row.len())
        .map(|i| {
            value(row, i).map_err(|e| {
                let column = &row.columns()[i];
                v4::Error::ValueConversionFailed(format!(
                    "cannot convert the value of column `{}` (type {}): {e}",
                    column.name(),
                    column.type_().name()
                ))
            })
        })
        .collect()
}

/// Reads column `i` as `T` (null → `db-null`) and wraps it with `f`.
fn get<'a, T: FromSql<'a>>(
    row: &'a Row,
    i: usize,
    f: impl FnOnce(T) -> Result<DbValue, BoxError>,
) -> Result<DbValue, BoxError> {
    match row.try_get::<_, Option<T>>(i)? {
        Some(v) => f(v),
        None => Ok(DbValue::DbNull),
    }
}

fn value(r: &Row, i: usize) -> Result<DbValue, BoxError> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
    match *r.columns()[i].type_() {
        Type::BOOL => get(r, i, |v| Ok(DbValue::Boolean(v))),
        Type::BYTEA => get(r, i, |v| Ok(DbValue::Binary(v))),
        Type::FLOAT4 => get(r, i, |v| Ok(DbValue::Floating32(v))),
        Type::FLOAT8 => get(r, i, |v| Ok(DbValue::Floating64(v))),
        Type::INT2 => get(r, i, |v| Ok(DbValue::Int16(v))),
        Type::INT4 => get(r, i, |v| Ok(DbValue::Int32(v))),
        Type::INT8 => get(r, i, |v| Ok(DbValue::Int64(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(r, i, |v| Ok(DbValue::Str(v))),
        Type::TIMESTAMP => get(r, i, |v: NaiveDateTime| {
            datetime_to_wit(v).map(DbValue::Datetime)
        }),
        Type::TIMESTAMPTZ => get(r, i, |v: DateTime<Utc>| {
            datetime_to_wit(v.naive_utc()).map(DbValue::Datetime)
        }),
        Type::DATE => get(r, i, |v: NaiveDate| {
            use chrono::Datelike;
            Ok(DbValue::Date((
                v.year(),
                v.month().try_into()?,
                v.day().try_into()?,
            )))
        }),
        Type::TIME => get(r, i, |v: NaiveTime| time_to_wit(v).map(DbValue::Time)),
        Type::UUID => get(r, i, |v: uuid::Uuid| Ok(DbValue::Uuid(v.to_string()))),
        Type::JSONB => get(r, i, |v: serde_json::Value| {
            Ok(DbValue::Jsonb(serde_json::to_vec(&v)?))
        }),
        Type::NUMERIC => get(r, i, |v: Decimal| Ok(DbValue::Decimal(v.to_string()))),
        Type::INT4_RANGE => get(r, i, |v| Ok(DbValue::RangeInt32(range_to_wit(&v, |x| *x)))),
        Type::INT8_RANGE => get(r, i, |v| Ok(DbValue::RangeInt64(range_to_wit(&v, |x| *x)))),
        Type::NUM_RANGE => get(r, i, |v: Range<RangeDecimal>| {
            Ok(DbValue::RangeDecimal(range_to_wit(&v, |d| d.0.to_string())))
        }),
        Type::INT4_ARRAY => get(r, i, |v| Ok(DbValue::ArrayInt32(v))),
        Type::INT8_ARRAY => get(r, i, |v| Ok(DbValue::ArrayInt64(v))),
        Type::NUMERIC_ARRAY => get(r, i, |v: Vec<Option<Decimal>>| {
            Ok(DbValue::ArrayDecimal(
                v.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
            ))
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(r, i, |v| Ok(DbValue::ArrayStr(v)))
        }
        Type::INTERVAL => get(r, i, |v: Interval| Ok(DbValue::Interval(v.0))),
        _ => get(r, i, |v: Raw| Ok(DbValue::Unsupported(v.0))),
    }
}

/// `(year, month, day, hour, minute, second, nanosecond)`.
type WitDatetime = (i32, u8, u8, u8, u8, u8, u32);

fn datetime_to_wit(v: chrono::NaiveDateTime) -> Result<WitDatetime, BoxError> {
    use chrono::Datelike;
    let (h, min, s, ns) = time_to_wit(v.time())?;
    Ok((
        v.year(),
        v.month().try_into()?,
        v.day().try_into()?,
        h,
        min,
        s,
        ns,
    ))
}

fn time_to_wit(v: chrono::NaiveTime) -> Result<(u8, u8, u8, u32), BoxError> {
    use chrono::Timelike;
    Ok((
        v.hour().try_into()?,
        v.minute().try_into()?,
        v.second().try_into()?,
        v.nanosecond(),
    ))
}

type WitRange<T> = (Option<(T, RangeBoundKind)>, Option<(T, RangeBoundKind)>);

fn range_to_wit<T, U>(v: &Range<T>, f: impl Fn(&T) -> U) -> WitRange<U>
where
    T: PartialOrd + Normalizable,
{
    fn bound<S: BoundSided, T, U>(
        b: &RangeBound<S, T>,
        f: &impl Fn(&T) -> U,
    ) -> (U, RangeBoundKind) {
        let kind = match b.type_ {
            BoundType::Inclusive => RangeBoundKind::Inclusive,
            BoundType::Exclusive => RangeBoundKind::Exclusive,
        };
        (f(&b.value), kind)
    }
    (
        v.lower().map(|b| bound(b, &f)),
        v.upper().map(|b| bound(b, &f)),
    )
}

fn range_from_wit<T, U>(
    (lower, upper): &WitRange<U>,
    f: impl Fn(&U) -> Result<T, BoxError>,
) -> Result<Range<T>, BoxError>
where
    T: PartialOrd + Normalizable,
{
    fn bound<S: BoundSided, T: PartialOrd, U>(
        (v, kind): &(U, RangeBoundKind),
        f: &impl Fn(&U) -> Result<T, BoxError>,
    ) -> Result<RangeBound<S, T>, BoxError> {
        let kind = match kind {
            RangeBoundKind::Inclusive => BoundType::Inclusive,
            RangeBoundKind::Exclusive => BoundType::Exclusive,
        };
        Ok(RangeBound::new(f(v)?, kind))
    }
    let lower = lower.as_ref().map(|b| bound(b, &f)).transpose()?;
    let upper = upper.as_ref().map(|b| bound(b, &f)).transpose()?;
    Ok(Range::new(lower, upper))
}

fn decimal(s: &str) -> Result<Decimal, BoxError> {
    Decimal::from_str_exact(s).map_err(|e| format!("invalid decimal `{s}`: {e}").into())
}

fn date(&(y, m, d): &(i32, u8, u8)) -> Result<chrono::NaiveDate, BoxError> {
    chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
        .ok_or_else(|| format!("invalid date {y}-{m}-{d}").into())
}

fn time(&(h, m, s, ns): &(u8, u8, u8, u32)) -> Result<chrono::NaiveTime, BoxError> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
        .ok_or_else(|| format!("invalid time {h}:{m}:{s}.{ns:09}").into())
}

type SqlParam = Box<dyn ToSql + Send + Sync>;

fn to_sql(p: &ParameterValue) -> Result<SqlParam, BoxError> {
    Ok(match p {
        ParameterValue::Boolean(v) => Box::new(*v),
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date(v) => Box::new(date(v)?),
        ParameterValue::Time(v) => Box::new(time(v)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            Box::new(date(&(*y, *mo, *d))?.and_time(time(&(*h, *mi, *s, *ns))?))
        }
        ParameterValue::Timestamp(v) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*v, 0)
                .ok_or_else(|| format!("invalid Unix timestamp {v}"))?,
        ),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).map_err(|e| format!("invalid UUID `{v}`: {e}"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .map_err(|e| format!("invalid JSON: {e}"))?,
        ),
        ParameterValue::Decimal(v) => Box::new(decimal(v)?),
        ParameterValue::RangeInt32(v) => Box::new(range_from_wit(v, |x| Ok(*x))?),
        ParameterValue::RangeInt64(v) => Box::new(range_from_wit(v, |x| Ok(*x))?),
        ParameterValue::RangeDecimal(v) => Box::new(range_from_wit(v, |s: &String| {
            decimal(s).map(RangeDecimal)
        })?),
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::Interval(v) => Box::new(Interval(*v)),
        ParameterValue::DbNull => Box::new(Null),
    })
}

/// The statement parameters; one that does not convert is `bad-parameter`.
pub(super) fn to_sql_parameters(params: &[ParameterValue]) -> Result<Vec<SqlParam>, v4::Error> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            to_sql(p).map_err(|e| v4::Error::BadParameter(format!("parameter ${}: {e}", i + 1)))
        })
        .collect()
}

/// A typeless SQL NULL parameter.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column value of a type without a mapping: its raw wire bytes.
struct Raw(Vec<u8>);

impl FromSql<'_> for Raw {
    fn from_sql(_: &Type, raw: &[u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `interval` in Postgres' binary format: microseconds, days, months.
#[derive(Debug)]
struct Interval(v4::Interval);

impl FromSql<'_> for Interval {
    fn from_sql(_: &Type, mut raw: &[u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err(format!("an interval is 16 bytes, got {}", raw.len()).into());
        }
        let micros = raw.get_i64();
        let days = raw.get_i32();
        let months = raw.get_i32();
        Ok(Interval(v4::Interval {
            micros,
            days,
            months,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

/// A decimal usable as a range bound (`numrange`; continuous, so normalising is a no-op).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct RangeDecimal(Decimal);

impl Normalizable for RangeDecimal {
    fn normalize<S: BoundSided>(bound: RangeBound<S, Self>) -> RangeBound<S, Self> {
        bound
    }
}

impl<'a> FromSql<'a> for RangeDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Decimal::from_sql(ty, raw).map(RangeDecimal)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

impl ToSql for RangeDecimal {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_convert_or_name_the_bad_one() {
        let ok = [
            ParameterValue::Date((2024, 2, 29)),
            ParameterValue::Datetime((2024, 2, 29, 23, 59, 59, 5)),
            ParameterValue::Timestamp(0),
            ParameterValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            ParameterValue::Jsonb(b"{\"a\":1}".to_vec()),
            ParameterValue::Decimal("12.50".into()),
            ParameterValue::RangeDecimal((Some(("1.5".into(), RangeBoundKind::Inclusive)), None)),
            ParameterValue::DbNull,
        ];
        assert_eq!(to_sql_parameters(&ok).expect("converts").len(), ok.len());
        let bad = [
            ParameterValue::Int32(1),
            ParameterValue::Date((2023, 2, 29)),
        ];
        match to_sql_parameters(&bad) {
            Err(v4::Error::BadParameter(m)) => {
                assert!(m.contains("$2") && m.contains("2023-2-29"), "{m}")
            }
            other => panic!("expected bad-parameter, got {other:?}"),
        }
        assert!(to_sql_parameters(&[ParameterValue::Uuid("nope".into())]).is_err());
        assert!(to_sql_parameters(&[ParameterValue::Jsonb(b"{".to_vec())]).is_err());
    }

    #[test]
    fn ranges_round_trip() {
        let wit: WitRange<i32> = (
            Some((1, RangeBoundKind::Inclusive)),
            Some((10, RangeBoundKind::Exclusive)),
        );
        let pg = range_from_wit(&wit, |x| Ok(*x)).expect("range");
        assert_eq!(range_to_wit(&pg, |x| *x), wit);
        let interval = v4::Interval {
            micros: -5,
            days: 3,
            months: 14,
        };
        let mut buf = BytesMut::new();
        Interval(interval)
            .to_sql(&Type::INTERVAL, &mut buf)
            .expect("encode");
        let back = Interval::from_sql(&Type::INTERVAL, &buf).expect("decode");
        assert_eq!(
            (back.0.micros, back.0.days, back.0.months),
            (interval.micros, interval.days, interval.months)
        );
    }
}
