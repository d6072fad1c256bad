//! The records: what the host keeps and passes between its layers, with no
//! behaviour beyond reading and naming them. The floor of the house: this
//! folder imports nothing else of the crate, and every other folder may
//! import it.
//!
//! - [`audit`]: the audit record and the closed sets it is named by;
//! - [`call`]: how a call ends when it has no result ([`call::CallError`]);
//! - [`effects`]: what a connector did at its imports;
//! - [`progress`]: how far a call has come, for a caller that listens;
//! - [`approval`]: a held call and its decisions;
//! - [`run`], [`problem`]: a workflow run, its journal, and its errors;
//! - [`version`]: a plugin's version history;
//! - [`digest`], [`time`], [`text`]: the digests, times and bounded text
//!   records are made of.

pub mod approval;
pub mod audit;
pub mod call;
pub mod digest;
pub mod effects;
pub mod problem;
pub mod progress;
pub mod run;
pub mod text;
pub mod time;
pub mod version;

#[cfg(test)]
pub(crate) mod tests {
    use serde::Serialize;
    use strum::VariantArray;

    /// Every variant of `T` is named by `as_str` (strum) as serde names it:
    /// the two spellings cannot drift apart.
    pub(crate) fn names_match<T>()
    where
        T: VariantArray + Serialize + Copy + Into<&'static str> + std::fmt::Debug,
    {
        for v in T::VARIANTS {
            let name: &'static str = (*v).into();
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(name), "{v:?}");
        }
    }

    #[test]
    fn closed_sets_are_named_as_serde_names_them() {
        names_match::<crate::model::audit::Action>();
        names_match::<crate::model::audit::Outcome>();
        names_match::<crate::model::audit::Via>();
        names_match::<crate::model::approval::ApprovalState>();
        names_match::<crate::model::run::RunState>();
        names_match::<crate::model::effects::Capability>();
        names_match::<crate::model::audit::Channel>();
        names_match::<crate::model::audit::Source>();
        names_match::<crate::model::approval::NotRun>();
        for o in <crate::model::audit::Outcome as VariantArray>::VARIANTS {
            assert_eq!(crate::model::audit::Outcome::named(o.as_str()), Some(*o));
        }
    }

    /// A call's channel, a bundle's source and an operator's interface are
    /// each recorded as the audit trail's `via` of the same name.
    #[test]
    fn each_way_in_is_recorded_under_its_own_name() {
        use crate::model::audit::{Channel, Interface, Source, Via};
        fn same<T: VariantArray + Copy + Into<&'static str> + Into<Via>>() {
            for v in T::VARIANTS {
                let name: &'static str = (*v).into();
                let via: Via = (*v).into();
                assert_eq!(name, via.as_str());
            }
        }
        same::<Channel>();
        same::<Source>();
        for i in Interface::VARIANTS {
            let name: &'static str = (*i).into();
            assert_eq!(name, Via::from(Some(*i)).as_str());
            assert_eq!(name, Source::from(*i).as_str());
        }
        assert_eq!(Via::from(None::<Interface>), Via::Host);
    }
}
