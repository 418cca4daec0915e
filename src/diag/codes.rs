//! The stable diagnostic codes. A code is never reused for a different fault; every
//! code has an entry in `docs/errors.md` and a fixture in `tests/fixtures/errors/`.

macro_rules! codes {
    ($($variant:ident = $code:literal, $title:literal;)*) => {
        /// A stable diagnostic code, printed as `vic::E0nn` / `vic::W0nn`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $(#[doc = $title] $variant),* }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];
            /// `vic::E010`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("vic::", $code)),* }
            }
            /// One line saying what the code is about.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title),* }
            }
            /// Whether this is a warning (`vic::W…`) rather than an error.
            pub fn is_warning(self) -> bool {
                self.as_str().starts_with("vic::W")
            }
        }
    };
}

codes! {
    // syntax
    Syntax = "E001", "syntax error";
    TooDeep = "E002", "expression nested too deeply";
    BadNumber = "E003", "number literal out of range";
    // names
    UnknownName = "E010", "unknown name";
    Duplicate = "E011", "duplicate declaration";
    UnknownFunction = "E012", "unknown function";
    UnknownDistribution = "E013", "unknown distribution or form";
    UnknownNetKind = "E014", "unknown net kind or net option";
    UnknownEstimator = "E015", "unknown estimator";
    WrongKind = "E016", "name used as the wrong kind of thing";
    BadArguments = "E017", "wrong number or kind of arguments";
    MultipleModelParts = "E018", "block declared twice";
    // roles and factors
    ObservedWithoutP = "E020", "observed variable without a p factor";
    ObservedInQ = "E021", "observed variable with a q factor";
    LatentWithoutPrior = "E022", "latent variable without a p factor";
    DuplicateFactor = "E023", "two factors for the same variable and time case";
    InputWithFactor = "E024", "input variable with a factor";
    SampleVsAssign = "E025", "sampled deterministic node or assigned random variable";
    StateUndefined = "E026", "deterministic state without a definition";
    FactorInWrongBlock = "E027", "factor in a block that may not define it";
    // time
    TimeIndexMismatch = "E030", "time index on a static variable, or missing on a timed one";
    FutureInP = "E031", "the generative model reads the future";
    MissingBaseCase = "E032", "a lag reaches before the start of the sequence";
    FutureInQ = "E033", "a posterior reads the future of a latent";
    BadBaseCase = "E034", "base cases must be contiguous from t = 1";
    BadInit = "E035", "init on a static variable or at t ≥ 1";
    StaticReadsTimed = "E036", "static factor reads a time-indexed variable";
    BadSequenceRead = "E037", "whole-sequence read outside a net over time";
    // graph
    CycleInP = "E040", "cycle in p within a time step";
    CycleInQ = "E041", "cycle in q within a time step";
    // dimensions
    DimMismatch = "E050", "operand sizes do not match";
    NetInputSize = "E051", "net input size does not match its arguments";
    DistParamSize = "E052", "distribution parameter size does not match the variable";
    MatMulShape = "E053", "matrix product shapes do not match";
    SplitSize = "E054", "split input is not twice the variable size";
    BadDim = "E055", "dimension is not a positive integer constant";
    DefinitionSize = "E056", "definition size does not match the declaration";
    InitSize = "E057", "init value size does not match the variable";
    ParamInitShape = "E058", "param initial value does not match its shape";
    SelectOutOfRange = "E059", "element index out of range";
    NotAVector = "E060", "a matrix where a vector is expected";
    // types and support
    SupportMismatch = "E070", "distribution support does not match the variable type";
    RewardNotScalar = "E071", "optimality reward is not a scalar";
    InfiniteKl = "E072", "KL(q ‖ p) is infinite: q's support is not inside p's";
    ImproperLikelihood = "E073", "improper distribution on an observed variable";
    EstimatorMismatch = "E074", "estimator does not apply to the variable";
    BadValue = "E075", "value out of range";
    NotConstant = "E076", "a constant expression was expected";
    TooLarge = "E077", "the model has too many parameters";
    TooLargeToAllocate = "E078", "a constant or lag too large to hold";
    ChainNotSummable = "E079", "a time-indexed latent cannot be summed out exactly";
    // objective and optimality
    UnknownSetting = "E080", "unknown objective setting";
    DuplicateSetting = "E081", "objective setting given twice";
    BadSetting = "E082", "objective setting has an invalid value";
    BadOptimality = "E083", "malformed optimality declaration";
    NoEvidence = "E084", "the model has no evidence";
    // imagination (behaviour learning)
    ImagineNoPolicy = "E085", "imagination block without a policy on an action";
    ImagineReadsData = "E086", "imagination reads observed data";
    BadCritic = "E087", "the critic is not a net over the model state";
    BadImagineSetting = "E088", "imagination setting missing or invalid";
    BadEnvSize = "E089", "malformed size from the environment (`env(obs, 3)`)";
    KnownDynamics = "E097", "known-dynamics imagination on dynamics that are not declared";
    // files and flags (the CLI)
    Io = "E090", "cannot read a file";
    NotUtf8 = "E091", "file is not UTF-8";
    BadFlag = "E092", "invalid command-line value";
    BadCheckpoint = "E093", "cannot use a checkpoint";
    RunDirInUse = "E094", "run directory in use by another run";
    RunDirNotEmpty = "E095", "run directory already holds a run";
    CannotWrite = "E096", "cannot write an output file";
    // data files (the loader: `data::DataError`)
    DataUnreadable = "E101", "cannot read a data file";
    DataInvalidFormat = "E102", "data file is not valid npz, npy or csv";
    DataMissingArray = "E103", "no array for an observed variable";
    DataWrongRank = "E104", "array has too few axes";
    DataFeatureSize = "E105", "feature dims do not match the declared size";
    DataNMismatch = "E106", "arrays disagree on the number of rows";
    DataTMismatch = "E107", "arrays disagree on the sequence length";
    DataTooShort = "E108", "sequences shorter than the model's lags";
    DataNonFinite = "E109", "NaN or infinite value in the data";
    DataUnsupportedDtype = "E110", "unsupported element type";
    DataOutOfSupport = "E111", "value outside the variable's support";
    DataBadMask = "E112", "bad mask";
    DataEmptyMaskRow = "E113", "mask row with no observed step";
    DataEmptyDataset = "E114", "the dataset is empty";
    DataCsvRagged = "E115", "CSV row with the wrong number of cells";
    DataCsvNonNumeric = "E116", "CSV cell that is not a number";
    // the tensor backend and training
    Unsupported = "E200", "feature not run by the tensor backend yet";
    NonFinite = "E201", "training produced NaN or infinity";
    OutOfMemory = "E202", "the run does not fit in memory";
    CannotSample = "E203", "cannot draw from the model";
    Backend = "E204", "the tensor backend failed on a checked model";
    // environments (`vic agent`)
    UnknownEnv = "E300", "unknown environment";
    EnvUnavailable = "E301", "cannot start the environment";
    EnvSpace = "E302", "environment spaces not supported";
    EnvProtocol = "E303", "the environment failed or broke the bridge protocol";
    // warnings
    Unused = "W001", "declared but never used";
    NeverInferred = "W002", "latent read by nothing";
    ResumeChanged = "W003", "resumed with different settings";
    AlreadyTrained = "W004", "the resumed run already reached --steps";
    ModifierUnused = "W005", "objective modifier acts on no term";
}
