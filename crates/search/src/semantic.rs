//! The optional semantic ranker: a static (Model2Vec-style) embedding model read from a local
//! directory, never fetched. A text's vector is the weighted mean of its tokens' rows,
//! normalised, so embedding is a table lookup per token: microseconds, no inference runtime.
//!
//! The directory holds what such a model ships: `tokenizer.json` (a Hugging Face tokenizer),
//! `model.safetensors` (`embeddings`, rows × dim, f32 or int8; optional `mapping` from token
//! id to row, for a vocabulary quantised to fewer rows; optional per-token `weights`) and
//! `config.json` (`normalize`).
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// Tokens of one text that count: the model was trained on passages of about this length.
const MAX_TOKENS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the search model directory {0} has no {1}")]
    Missing(PathBuf, &'static str),
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("the search model's tokenizer.json cannot be used: {0}")]
    Tokenizer(String),
    #[error("the search model's model.safetensors cannot be used: {0}")]
    Weights(String),
}

/// A loaded model. Immutable, so one is shared by every index that ranks with it.
pub struct Embedder {
    tokenizer: tokenizers::Tokenizer,
    /// Row of each token id (identity when the model has no `mapping`).
    mapping: Vec<u32>,
    /// Weight of each token id (1 when the model has none).
    weights: Vec<f32>,
    /// `rows × dim`, row-major.
    table: Vec<f32>,
    dim: usize,
    normalize: bool,
    /// The unknown-token id: it carries no meaning, so it is skipped.
    unk: Option<u32>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("tokens", &self.mapping.len()).field("dim", &self.dim).finish()
    }
}

impl Embedder {
    /// Loads the model in `dir`; every problem is reported, nothing is fetched.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let file = |name: &'static str| {
            let p = dir.join(name);
            if p.is_file() { Ok(p) } else { Err(ModelError::Missing(dir.to_owned(), name)) }
        };
        let (tok_path, weights_path) = (file("tokenizer.json")?, file("model.safetensors")?);
        let normalize = match std::fs::read_to_string(dir.join("config.json")) {
            // Model2Vec's default when the file or key is absent.
            Err(_) => true,
            Ok(text) => !text.replace(' ', "").contains("\"normalize\":false"),
        };
        let tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let bytes = std::fs::read(&weights_path).map_err(|e| ModelError::Io(weights_path.clone(), e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Weights(e.to_string()))?;
        let emb = st.tensor("embeddings").map_err(|e| ModelError::Weights(format!("no \"embeddings\": {e}")))?;
        let [rows, dim] = emb.shape() else {
            return Err(ModelError::Weights(format!("\"embeddings\" has shape {:?}, not rows × dim", emb.shape())));
        };
        let (rows, dim) = (*rows, *dim);
        let table: Vec<f32> = match emb.dtype() {
            Dtype::I8 => emb.data().iter().map(|b| f32::from(*b as i8)).collect(),
            Dtype::F32 => emb.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            other => return Err(ModelError::Weights(format!("\"embeddings\" are {other:?}, not int8 or f32"))),
        };
        if table.len() != rows * dim || dim == 0 {
            return Err(ModelError::Weights("\"embeddings\" data does not match its shape".into()));
        }
        let vocab = tokenizer.get_vocab_size(true);
        let mapping: Vec<u32> = match st.tensor("mapping") {
            Ok(m) if m.dtype() == Dtype::I64 => m
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .map(|r| u32::try_from(r).ok().filter(|r| (*r as usize) < rows))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| ModelError::Weights("\"mapping\" names a row the table does not have".into()))?,
            Ok(m) => return Err(ModelError::Weights(format!("\"mapping\" is {:?}, not int64", m.dtype()))),
            Err(_) if rows >= vocab => (0..vocab as u32).collect(),
            Err(_) => return Err(ModelError::Weights(format!("{rows} rows for {vocab} tokens and no \"mapping\""))),
        };
        let weights: Vec<f32> = match st.tensor("weights") {
            Ok(w) if w.dtype() == Dtype::F32 => {
                w.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            Ok(w) => return Err(ModelError::Weights(format!("\"weights\" are {:?}, not f32", w.dtype()))),
            Err(_) => vec![1.0; mapping.len()],
        };
        if weights.len() != mapping.len() {
            return Err(ModelError::Weights("\"weights\" and \"mapping\" differ in length".into()));
        }
        let unk = tokenizer.token_to_id("<unk>").or_else(|| tokenizer.token_to_id("[UNK]"));
        Ok(Embedder { tokenizer, mapping, weights, table, dim, normalize, unk })
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The text's vector; `None` when none of its tokens is known.
    pub fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let enc = self.tokenizer.encode_fast(text, false).ok()?;
        let mut out = vec![0f32; self.dim];
        let mut n = 0usize;
        for &id in enc.get_ids().iter().filter(|id| Some(**id) != self.unk).take(MAX_TOKENS) {
            let id = id as usize;
            let (Some(&row), Some(&w)) = (self.mapping.get(id), self.weights.get(id)) else { continue };
            let row = &self.table[row as usize * self.dim..][..self.dim];
            for (o, v) in out.iter_mut().zip(row) {
                *o += w * v;
            }
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let norm = if self.normalize { out.iter().map(|v| v * v).sum::<f32>().sqrt() } else { n as f32 };
        if norm > 0.0 {
            out.iter_mut().for_each(|v| *v /= norm);
        }
        Some(out)
    }
}

/// The dot product (the cosine, for normalised vectors).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
