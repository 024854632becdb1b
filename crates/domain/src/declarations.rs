//! A declaration: its goods items together.

use std::collections::BTreeMap;

use crate::DeclarationItem;

/// Why items do not make a declaration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeclarationError {
    /// No item at all.
    #[error("declaration '{id}' has no item")]
    Empty {
        /// the declaration
        id: String,
    },
    /// An item that belongs to another declaration.
    #[error("item {other}/{item_no} is not an item of declaration '{id}'")]
    OtherDeclaration {
        /// the declaration
        id: String,
        /// the declaration the item belongs to
        other: String,
        /// its item number
        item_no: u32,
    },
    /// Two items with the same number.
    #[error("declaration '{id}' has item {item_no} twice")]
    DuplicateItem {
        /// the declaration
        id: String,
        /// the item number found twice
        item_no: u32,
    },
}

/// One import declaration: at least one item, every item of this declaration, sorted by item
/// number, no number twice.
#[derive(Clone, PartialEq, Debug)]
pub struct Declaration {
    id: String,
    items: Vec<DeclarationItem>,
}

impl Declaration {
    /// Declaration `id` of `items` (in any order); refuses no items, an item of another
    /// declaration, and an item number given twice.
    pub fn new(
        id: impl Into<String>,
        mut items: Vec<DeclarationItem>,
    ) -> Result<Declaration, DeclarationError> {
        let id = id.into();
        if items.is_empty() {
            return Err(DeclarationError::Empty { id });
        }
        if let Some(item) = items.iter().find(|i| i.key.declaration_id != id) {
            return Err(DeclarationError::OtherDeclaration {
                other: item.key.declaration_id.clone(),
                item_no: item.key.item_no,
                id,
            });
        }
        items.sort_by_key(|i| i.key.item_no);
        if let Some(pair) = items
            .windows(2)
            .find(|w| w[0].key.item_no == w[1].key.item_no)
        {
            return Err(DeclarationError::DuplicateItem {
                item_no: pair[0].key.item_no,
                id,
            });
        }
        Ok(Declaration { id, items })
    }

    /// Groups `items` (in any order) by declaration, declarations by id; refuses an item number
    /// given twice in a declaration.
    pub fn group(
        items: impl IntoIterator<Item = DeclarationItem>,
    ) -> Result<Vec<Declaration>, DeclarationError> {
        let mut by_id: BTreeMap<String, Vec<DeclarationItem>> = BTreeMap::new();
        for item in items {
            by_id
                .entry(item.key.declaration_id.clone())
                .or_default()
                .push(item);
        }
        by_id
            .into_iter()
            .map(|(id, items)| Declaration::new(id, items))
            .collect()
    }

    /// Declaration number.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Items, by item number.
    pub fn items(&self) -> &[DeclarationItem] {
        &self.items
    }

    /// Item `item_no`, when the declaration has it.
    pub fn item(&self, item_no: u32) -> Option<&DeclarationItem> {
        self.items
            .binary_search_by_key(&item_no, |i| i.key.item_no)
            .ok()
            .map(|at| &self.items[at])
    }

    /// The first item (the lowest number).
    pub fn first(&self) -> &DeclarationItem {
        &self.items[0]
    }

    /// The items, by item number.
    pub fn into_items(self) -> Vec<DeclarationItem> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HsCode, ItemKey};
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn item(declaration_id: &str, item_no: u32) -> DeclarationItem {
        DeclarationItem {
            key: ItemKey {
                declaration_id: declaration_id.into(),
                item_no,
            },
            date: NaiveDate::from_ymd_opt(2021, 3, 1).unwrap(),
            office_id: "30".into(),
            process_type: "B".into(),
            import_type: "11".into(),
            import_use: "21".into(),
            payment_type: "11".into(),
            transport_mode: "10".into(),
            declarant_id: "D1".into(),
            importer_id: "I1".into(),
            seller_id: None,
            courier_id: None,
            hs6: HsCode::parse("851712").unwrap(),
            departure_country: "CN".into(),
            origin_country: "CN".into(),
            tax_rate: 8.0,
            tax_type: "A".into(),
            origin_indicator: "G".into(),
            net_mass: 1.0,
            item_price: 100.0 * f64::from(item_no),
            label: None,
            extra: Default::default(),
        }
    }

    fn numbers(declaration: &Declaration) -> Vec<u32> {
        declaration.items().iter().map(|i| i.key.item_no).collect()
    }

    #[test]
    fn items_are_kept_by_number() {
        let d = Declaration::new("A", vec![item("A", 3), item("A", 1), item("A", 2)]).unwrap();
        assert_eq!(d.id(), "A");
        assert_eq!(numbers(&d), [1, 2, 3]);
        assert_eq!(d.first().key.item_no, 1);
        assert_eq!(d.item(2).unwrap().item_price, 200.0);
        assert!(d.item(4).is_none());
    }

    #[test]
    fn empty_foreign_and_repeated_items_are_refused() {
        assert_eq!(
            Declaration::new("A", vec![]).unwrap_err().to_string(),
            "declaration 'A' has no item"
        );
        assert_eq!(
            Declaration::new("A", vec![item("A", 1), item("B", 2)])
                .unwrap_err()
                .to_string(),
            "item B/2 is not an item of declaration 'A'"
        );
        assert_eq!(
            Declaration::new("A", vec![item("A", 1), item("A", 1)]).unwrap_err(),
            DeclarationError::DuplicateItem {
                id: "A".into(),
                item_no: 1
            }
        );
        assert!(Declaration::group([item("A", 1), item("B", 1), item("A", 1)]).is_err());
    }

    proptest! {
        /// Grouping keeps every item once, in the declaration it names, sorted by number, and
        /// the declarations sorted by id.
        #[test]
        fn grouping_partitions_the_items(
            keys in proptest::collection::btree_set((0u8..5, 1u32..20), 0..40),
            seed in any::<u64>(),
        ) {
            let mut items: Vec<DeclarationItem> = keys
                .iter()
                .map(|(d, n)| item(&format!("D{d}"), *n))
                .collect();
            crate::rng::Rng::new(seed).shuffle(&mut items);
            let declarations = Declaration::group(items).unwrap();
            let ids: Vec<&str> = declarations.iter().map(Declaration::id).collect();
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&ids, &sorted);
            let mut regrouped = Vec::new();
            for d in &declarations {
                prop_assert!(!d.items().is_empty());
                let n = numbers(d);
                prop_assert!(n.windows(2).all(|w| w[0] < w[1]));
                for i in d.items() {
                    prop_assert_eq!(&i.key.declaration_id, d.id());
                    regrouped.push((i.key.declaration_id[1..].parse::<u8>().unwrap(), i.key.item_no));
                }
            }
            let expected: Vec<(u8, u32)> = keys.into_iter().collect();
            prop_assert_eq!(regrouped, expected);
        }
    }
}
