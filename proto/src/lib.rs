//! Generated gRPC code for the `mcpd.v1` contract, plus its descriptor set for reflection.
#![allow(missing_docs, unreachable_pub, clippy::all)]

pub mod v1 {
    tonic::include_proto!("mcpd.v1");
}

/// Encoded `FileDescriptorSet` of `mcpd.v1`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mcpd_descriptor.bin"));
