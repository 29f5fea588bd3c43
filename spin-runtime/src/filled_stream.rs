//! How the component-model `async` query functions hand a whole result to the guest: a
//! stream already holding every item, and a completion future already resolved.
//!
//! `spin:sqlite@3.1.0`'s `execute-async`, `spin:postgres@4.2.0`'s `query-async`,
//! `spin:mysql@3.0.0`'s `query` and `spin:key-value@3.0.0`'s `get-keys` answer this way:
//! spinlet reads the result set on the host first (the interfaces' own modules do that),
//! then hands it over here. This module owns only the stream and future plumbing.

use wasmtime::component::{Accessor, FutureReader, HasData, Lift, Lower, StreamReader};

/// A guest stream of items with the future that says whether all of them arrived.
pub type Filled<I, E> = (StreamReader<I>, FutureReader<Result<(), E>>);

/// A stream of `items` and a future resolving to `done`, created in `accessor`'s store.
pub fn filled<T, D, I, E>(
    accessor: &Accessor<T, D>,
    items: Vec<I>,
    done: Result<(), E>,
) -> wasmtime::Result<Filled<I, E>>
where
    D: HasData + ?Sized,
    I: Lower + Lift + Send + Sync + Unpin + 'static,
    Result<(), E>: Lower + Lift + Send + Sync + 'static,
{
    accessor.with(|mut a| {
        let items = StreamReader::new(&mut a, items)?;
        let done = FutureReader::new(&mut a, async move { Ok::<_, wasmtime::Error>(done) })?;
        Ok((items, done))
    })
}
