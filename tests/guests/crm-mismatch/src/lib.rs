//! Exports the contract's `crm` interface by name, with a `get-customer` of
//! other types: a component that names a world must have its types.
wit_bindgen::generate!({
    inline: r#"
        package toolhost:connector@0.1.0;

        interface crm {
            /// Not the contract's signature.
            get-customer: func(id: u32) -> string;
        }

        world crm-mismatch { export crm; }
    "#,
});

struct Mismatch;

impl exports::toolhost::connector::crm::Guest for Mismatch {
    fn get_customer(id: u32) -> String {
        id.to_string()
    }
}

export!(Mismatch);
