//! The per-instance store data: one [`InstanceState`] per request.
//!
//! This module owns what lives in a `wasmtime::Store`: the resource table, the WASI and
//! WASI-HTTP contexts, the outbound-HTTP hooks, the memory limits and each Spin host
//! interface's context. It implements every view trait the linked interfaces need
//! (`WasiView`, `WasiHttpView`, [`VariablesView`], [`KeyValueView`], [`SqliteView`],
//! [`RedisView`], [`MqttView`], [`PgView`], [`MysqlView`]).

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::headers::IncomingHeaders;
use crate::key_value::{KeyValueCtx, KeyValueCtxView, KeyValueView};
use crate::outbound::OutboundHttp;
use crate::outbound_mqtt::{MqttCtx, MqttCtxView, MqttView};
use crate::outbound_mysql::{MysqlCtx, MysqlCtxView, MysqlView};
use crate::outbound_pg::{PgCtx, PgCtxView, PgView};
use crate::outbound_redis::{RedisCtx, RedisCtxView, RedisView};
use crate::sqlite::{SqliteCtx, SqliteCtxView, SqliteView};
use crate::variables::{VariablesCtx, VariablesCtxView, VariablesView};

/// Store data for one instance.
pub struct InstanceState {
    /// Resources handed to the guest.
    pub table: ResourceTable,
    /// WASI context (environment, preopens, stdio, and `wasi:sockets` checked against
    /// `allowed_outbound_hosts`: [`crate::outbound_sockets`]).
    pub wasi: WasiCtx,
    /// WASI-HTTP context.
    pub http: WasiHttpCtx,
    /// Outbound HTTP policy (its rules also gate `wasi:sockets` name lookups).
    pub hooks: OutboundHttp,
    /// The header filter of the request entering the guest (lets `Host` through).
    pub incoming: IncomingHeaders,
    /// Memory and instance limits.
    pub limits: StoreLimits,
    /// Component variables.
    pub variables: VariablesCtx,
    /// Key-value stores.
    pub key_value: KeyValueCtx,
    /// SQLite databases.
    pub sqlite: SqliteCtx,
    /// Outbound Redis.
    pub redis: RedisCtx,
    /// Outbound MQTT.
    pub mqtt: MqttCtx,
    /// Outbound PostgreSQL.
    pub pg: PgCtx,
    /// Outbound MySQL.
    pub mysql: MysqlCtx,
    /// Keeps the epoch ticking while this store lives.
    pub activity: crate::engine::Activity,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl InstanceState {
    /// The WASI-HTTP view that turns the incoming request into the guest's: as
    /// [`WasiHttpView::http`], but filtering headers as Spin passes them to guests
    /// ([`IncomingHeaders`]). Everything the guest does itself goes through `http()`.
    pub fn incoming_http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.incoming,
        }
    }
}

impl VariablesView for InstanceState {
    fn variables(&mut self) -> VariablesCtxView<'_> {
        VariablesCtxView {
            ctx: &self.variables,
        }
    }
}

impl KeyValueView for InstanceState {
    fn key_value(&mut self) -> KeyValueCtxView<'_> {
        KeyValueCtxView {
            ctx: &self.key_value,
            table: &mut self.table,
        }
    }
}

impl SqliteView for InstanceState {
    fn sqlite(&mut self) -> SqliteCtxView<'_> {
        SqliteCtxView {
            ctx: &self.sqlite,
            table: &mut self.table,
        }
    }
}

impl RedisView for InstanceState {
    fn redis(&mut self) -> RedisCtxView<'_> {
        RedisCtxView {
            ctx: &self.redis,
            table: &mut self.table,
        }
    }
}

impl MqttView for InstanceState {
    fn mqtt(&mut self) -> MqttCtxView<'_> {
        MqttCtxView {
            ctx: &self.mqtt,
            table: &mut self.table,
        }
    }
}

impl PgView for InstanceState {
    fn pg(&mut self) -> PgCtxView<'_> {
        PgCtxView {
            ctx: &self.pg,
            table: &mut self.table,
        }
    }
}

impl MysqlView for InstanceState {
    fn mysql(&mut self) -> MysqlCtxView<'_> {
        MysqlCtxView {
            ctx: &self.mysql,
            table: &mut self.table,
        }
    }
}
