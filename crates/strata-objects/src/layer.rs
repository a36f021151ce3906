//! One decorator type for every cross-cutting concern: [`Layered`] wraps a store and sends
//! each request through a [`Layer`], which may call it once (counting, timing out), several
//! times (retrying), or not at all (injecting a fault). Layers stack: each wraps the store
//! below it, so the order of `Layered::new` calls is the order requests meet them.
//!
//! A request is a closure the layer can call again: payloads and options are cheap to clone
//! (`PutPayload` is reference counted). Listing and batch deletion return streams; layers see
//! them only as they start ([`Layer::on_stream`]).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// What a request does, as layers and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    Get,
    Delete,
    List,
    Copy,
    Rename,
    /// Starting a multipart upload (its parts go straight to the store).
    Multipart,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Copy => "copy",
            Self::Rename => "rename",
            Self::Multipart => "multipart",
        }
    }

    /// Whether repeating the request cannot change its outcome. Every write Strata makes is to
    /// a name used once, with the same bytes, so a repeated PUT is as safe as a GET.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Self::Rename)
    }
}

/// One request as a layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub op: Op,
    pub path: &'a Path,
    /// The bytes a PUT sends.
    pub bytes: u64,
}

/// A repeatable call to the layer below.
pub type Call<'a, T> = &'a (dyn Fn() -> BoxFuture<'a, Result<T>> + Send + Sync);

/// A cross-cutting concern applied to every request.
pub trait Layer: Send + Sync + fmt::Debug + 'static {
    /// Runs `call` (the request against the layer below) however this layer sees fit.
    fn around<'a, T: Send + 'a>(
        &'a self,
        request: Request<'a>,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>>;

    /// A listing or batch deletion starting (streams are passed through).
    fn on_stream(&self, _op: Op) {}
}

/// A store with a layer in front of it.
#[derive(Debug)]
pub struct Layered<L> {
    inner: Arc<dyn ObjectStore>,
    layer: L,
}

impl<L: Layer> Layered<L> {
    pub fn new(inner: Arc<dyn ObjectStore>, layer: L) -> Self {
        Self { inner, layer }
    }

    pub fn layer(&self) -> &L {
        &self.layer
    }
}

impl<L: Layer> fmt::Display for Layered<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({})", self.layer, self.inner)
    }
}

#[async_trait]
impl<L: Layer> ObjectStore for Layered<L> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let bytes = payload.content_length() as u64;
        let call = || {
            self.inner
                .put_opts(location, payload.clone(), opts.clone())
                .boxed()
        };
        let request = Request {
            op: Op::Put,
            path: location,
            bytes,
        };
        self.layer.around(request, &call).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let call = || {
            self.inner
                .put_multipart_opts(location, opts.clone())
                .boxed()
        };
        let request = Request {
            op: Op::Multipart,
            path: location,
            bytes: 0,
        };
        self.layer.around(request, &call).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let call = || self.inner.get_opts(location, options.clone()).boxed();
        let request = Request {
            op: Op::Get,
            path: location,
            bytes: 0,
        };
        self.layer.around(request, &call).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let call = || self.inner.get_ranges(location, ranges).boxed();
        let request = Request {
            op: Op::Get,
            path: location,
            bytes: 0,
        };
        self.layer.around(request, &call).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.layer.on_stream(Op::Delete);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.layer.on_stream(Op::List);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.layer.on_stream(Op::List);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let root = Path::default();
        let call = || self.inner.list_with_delimiter(prefix).boxed();
        let request = Request {
            op: Op::List,
            path: prefix.unwrap_or(&root),
            bytes: 0,
        };
        self.layer.around(request, &call).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let call = || self.inner.copy_opts(from, to, options.clone()).boxed();
        let request = Request {
            op: Op::Copy,
            path: to,
            bytes: 0,
        };
        self.layer.around(request, &call).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let call = || self.inner.rename_opts(from, to, options.clone()).boxed();
        let request = Request {
            op: Op::Rename,
            path: to,
            bytes: 0,
        };
        self.layer.around(request, &call).await
    }
}
