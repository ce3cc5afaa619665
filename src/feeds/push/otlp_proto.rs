//! The OTLP metrics messages an `otlp` feed reads, declared with prost's
//! derive from `opentelemetry/proto/{collector/metrics/v1,metrics/v1,
//! common/v1,resource/v1}` (no protoc at build time). Only the fields the
//! items carry are declared; prost skips the others. `otlp_json` fills the
//! same messages from the JSON encoding.

/// `ExportMetricsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ExportMetricsServiceRequest {
    /// One entry per resource (a process, a host).
    #[prost(message, repeated, tag = "1")]
    pub(crate) resource_metrics: Vec<ResourceMetrics>,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResourceMetrics {
    /// The resource the metrics describe.
    #[prost(message, optional, tag = "1")]
    pub(crate) resource: Option<Resource>,
    /// Its metrics, by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub(crate) scope_metrics: Vec<ScopeMetrics>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Resource {
    /// Its attributes (`service.name`, ...).
    #[prost(message, repeated, tag = "1")]
    pub(crate) attributes: Vec<KeyValue>,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ScopeMetrics {
    /// The metrics of one scope.
    #[prost(message, repeated, tag = "2")]
    pub(crate) metrics: Vec<Metric>,
}

/// `Metric`: a name and one kind of data.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Metric {
    /// The metric's name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// Its data points.
    #[prost(oneof = "Data", tags = "5, 7, 9")]
    pub(crate) data: Option<Data>,
}

/// `Metric.data`: the kinds an `otlp` feed takes (exponential histograms and
/// summaries are skipped).
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Data {
    /// A gauge.
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    /// A sum (a counter, or an up-down counter).
    #[prost(message, tag = "7")]
    Sum(Sum),
    /// An explicit-bucket histogram.
    #[prost(message, tag = "9")]
    Histogram(Histogram),
}

/// `Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Gauge {
    /// Its points.
    #[prost(message, repeated, tag = "1")]
    pub(crate) data_points: Vec<NumberDataPoint>,
}

/// `Sum`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sum {
    /// Its points.
    #[prost(message, repeated, tag = "1")]
    pub(crate) data_points: Vec<NumberDataPoint>,
}

/// `Histogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Histogram {
    /// Its points.
    #[prost(message, repeated, tag = "1")]
    pub(crate) data_points: Vec<HistogramDataPoint>,
}

/// `NumberDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NumberDataPoint {
    /// The point's attributes.
    #[prost(message, repeated, tag = "7")]
    pub(crate) attributes: Vec<KeyValue>,
    /// When it was measured, ns since the epoch.
    #[prost(fixed64, tag = "3")]
    pub(crate) time_unix_nano: u64,
    /// Its value.
    #[prost(oneof = "NumberValue", tags = "4, 6")]
    pub(crate) value: Option<NumberValue>,
}

/// `NumberDataPoint.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum NumberValue {
    /// A float.
    #[prost(double, tag = "4")]
    AsDouble(f64),
    /// An integer.
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

/// `HistogramDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HistogramDataPoint {
    /// The point's attributes.
    #[prost(message, repeated, tag = "9")]
    pub(crate) attributes: Vec<KeyValue>,
    /// When it was measured, ns since the epoch.
    #[prost(fixed64, tag = "3")]
    pub(crate) time_unix_nano: u64,
    /// How many values were recorded.
    #[prost(fixed64, tag = "4")]
    pub(crate) count: u64,
    /// Their sum, when known.
    #[prost(double, optional, tag = "5")]
    pub(crate) sum: Option<f64>,
    /// Values per bucket (one more than `explicit_bounds`).
    #[prost(fixed64, repeated, tag = "6")]
    pub(crate) bucket_counts: Vec<u64>,
    /// The buckets' upper bounds.
    #[prost(double, repeated, tag = "7")]
    pub(crate) explicit_bounds: Vec<f64>,
    /// The smallest value recorded, when known.
    #[prost(double, optional, tag = "11")]
    pub(crate) min: Option<f64>,
    /// The largest value recorded, when known.
    #[prost(double, optional, tag = "12")]
    pub(crate) max: Option<f64>,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValue {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub(crate) key: String,
    /// Its value.
    #[prost(message, optional, tag = "2")]
    pub(crate) value: Option<AnyValue>,
}

/// `AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AnyValue {
    /// The value, of one type.
    #[prost(oneof = "Any", tags = "1, 2, 3, 4, 5, 6")]
    pub(crate) value: Option<Any>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Any {
    /// A string.
    #[prost(string, tag = "1")]
    String(String),
    /// A boolean.
    #[prost(bool, tag = "2")]
    Bool(bool),
    /// An integer.
    #[prost(int64, tag = "3")]
    Int(i64),
    /// A float.
    #[prost(double, tag = "4")]
    Double(f64),
    /// A list.
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    /// A map.
    #[prost(message, tag = "6")]
    Kvlist(KeyValueList),
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ArrayValue {
    /// Its values.
    #[prost(message, repeated, tag = "1")]
    pub(crate) values: Vec<AnyValue>,
}

/// `KeyValueList`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValueList {
    /// Its entries.
    #[prost(message, repeated, tag = "1")]
    pub(crate) values: Vec<KeyValue>,
}

/// `google.rpc.Status`: what an OTLP server answers a refused export with.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Status {
    /// The gRPC code (3: invalid argument, 16: unauthenticated, ...).
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    /// What is wrong.
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}
