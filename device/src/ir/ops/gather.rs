//! Gather: an embedding lookup. Input 0 is a constant table `[V, …]`, input 1 integer indices from a model
//! input (batch first, exact integers, never quantized); the output holds, per index, its row of the table
//! (`indices.shape ++ table.shape[1..]`). Values only move, so the output's encoding is the table's own
//! (every row stays representable, as QNN's converter encodes a static table over its whole range).

use serde::{Deserialize, Serialize};

use super::OpDef;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gather;

impl OpDef for Gather {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let [table, indices] = ins else {
            return Err(format!(
                "{} inputs, Gather takes a table and indices",
                ins.len()
            ));
        };
        if table.is_empty() || table[0] == 0 {
            return Err(format!("table of shape {table:?}"));
        }
        Ok([indices, &table[1..]].concat())
    }

    fn const_range(&self) -> Option<usize> {
        Some(0)
    }
}
