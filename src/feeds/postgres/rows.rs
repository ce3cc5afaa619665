//! A PostgreSQL row as a tickerd item: which column types map, and how each
//! is decoded (numbers, exact `numeric`, text, JSON, timestamps, dates).

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Row, Statement};

use super::{describe, NumericAs, TimestampAs};

/// The column types [`row_to_item`] maps.
const MAPPED: [Type; 17] = [
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::OID,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::JSON,
    Type::JSONB,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::DATE,
];

/// Refuses a statement with a column we cannot map, naming the cast that
/// would fix it.
pub(super) fn check_columns(statement: &Statement) -> Result<(), String> {
    for c in statement.columns() {
        if !MAPPED.contains(c.type_()) {
            return Err(format!(
                "query: column `{}` has type {}, which tickerd does not map; \
                 cast it in the query (e.g. `{}::text`)",
                c.name(),
                c.type_(),
                c.name()
            ));
        }
    }
    Ok(())
}

/// One row as an item: columns as fields, NULL as `null`; integers and
/// floats as numbers, `numeric` as a number or its exact string, text as
/// strings, `json`/`jsonb` as JSON, timestamps as ms or RFC 3339 (UTC),
/// dates as `YYYY-MM-DD`.
///
/// # Errors
/// A value cannot be decoded (e.g. an `infinity` timestamp): the message names
/// the column.
pub(crate) fn row_to_item(
    row: &Row,
    numeric: NumericAs,
    timestamps: TimestampAs,
) -> Result<Value, String> {
    let mut item = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let bad = |e: tokio_postgres::Error| format!("column `{name}`: {}", describe(&e));
        let float = |f: Option<f64>| {
            f.and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number)
        };
        let value = match *column.type_() {
            Type::BOOL => get::<bool>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, Value::Bool),
            Type::INT2 => get::<i16>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, Value::from),
            Type::INT4 => get::<i32>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, Value::from),
            Type::INT8 => get::<i64>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, Value::from),
            Type::OID => get::<u32>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, Value::from),
            Type::FLOAT4 => float(get::<f32>(row, i).map_err(bad)?.map(f64::from)),
            Type::FLOAT8 => float(get::<f64>(row, i).map_err(bad)?),
            Type::NUMERIC => match get::<Numeric>(row, i).map_err(bad)? {
                None => Value::Null,
                Some(Numeric(s)) => match numeric {
                    NumericAs::String => Value::String(s),
                    NumericAs::Float => float(s.parse().ok()),
                },
            },
            Type::JSON | Type::JSONB => get::<Value>(row, i).map_err(bad)?.unwrap_or(Value::Null),
            Type::TIMESTAMP => {
                let t = get::<time::PrimitiveDateTime>(row, i).map_err(bad)?;
                timestamp(t.map(|t| t.assume_utc()), timestamps)
            }
            Type::TIMESTAMPTZ => timestamp(
                get::<time::OffsetDateTime>(row, i).map_err(bad)?,
                timestamps,
            ),
            Type::DATE => get::<time::Date>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, |d| Value::String(d.to_string())),
            _ => get::<String>(row, i)
                .map_err(bad)?
                .map_or(Value::Null, Value::String),
        };
        item.insert(name.to_string(), value);
    }
    Ok(Value::Object(item))
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, tokio_postgres::Error> {
    row.try_get::<_, Option<T>>(i)
}

fn timestamp(t: Option<time::OffsetDateTime>, how: TimestampAs) -> Value {
    let Some(t) = t else { return Value::Null };
    match how {
        TimestampAs::Ms => Value::from((t.unix_timestamp_nanos() / 1_000_000) as i64),
        TimestampAs::Rfc3339 => {
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.to_offset(time::UtcOffset::UTC)
                .format(&format)
                .map_or(Value::Null, Value::String)
        }
    }
}

/// A `numeric` value as its exact decimal string (`NaN` and `±Infinity` as
/// PostgreSQL writes them).
#[derive(Debug, PartialEq)]
struct Numeric(String);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        numeric_to_string(raw)
            .map(Numeric)
            .ok_or_else(|| "malformed numeric".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Decodes PostgreSQL's binary `numeric`: a header (digit count, weight of the
/// first digit in powers of 10 000, sign, display scale) and base-10 000 digits.
pub(super) fn numeric_to_string(raw: &[u8]) -> Option<String> {
    let word = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    let digits: Vec<u16> = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<_>>()?;
    let digit = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut s = String::new();
    match sign {
        0x0000 => {}
        0x4000 => s.push('-'),
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    if weight < 0 {
        s.push('0');
    } else {
        let _ = write!(s, "{}", digit(0));
        for i in 1..=weight {
            let _ = write!(s, "{:04}", digit(i));
        }
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(i));
            i += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}
