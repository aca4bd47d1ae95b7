"""Event2Vec (Fang & Panda, arXiv 2504.15371 v1): events embedded as tokens for a transformer.

``embedding``: the lookup tables and neighbour embeddings; ``stages``: temporal encodings and the
optional steps around the embedding; ``network``: :class:`Event2VecNet` (classifier),
:class:`MaskedEventNet` (self-supervised pre-training) and their config.
"""

from event_lightning.nn.event2vec.embedding import (
    EMBEDDING_FORMS,
    EmbeddingSpec,
    Naive2dEmbedding,
    NaiveEmbedding,
    Neighbor1dNaive2dEmbedding,
    Neighbor1dNaiveEmbedding,
    Neighbor2dNaiveEmbedding,
    SpatialDownsample,
    build_embedding,
    gaussian_neighbour_weights,
    parse_embedding,
)
from event_lightning.nn.event2vec.network import (
    OFFSET_COORDINATE_MODES,
    Event2VecConfig,
    Event2VecEmbedding,
    Event2VecNet,
    MaskedEventNet,
    PostNormEncoderLayer,
    TokenClassifier,
    TokenEncoder,
)
from event_lightning.nn.event2vec.stages import (
    TEMPORAL_ENCODINGS,
    AdditiveTime,
    CoordinateNoise,
    DropSequence,
    MaskTokens,
    MergeTimeHeads,
    OffsetCoordinate,
    Time2Vec,
    build_temporal_encoding,
    offset_time,
)

__all__ = [
    "EMBEDDING_FORMS",
    "OFFSET_COORDINATE_MODES",
    "TEMPORAL_ENCODINGS",
    "AdditiveTime",
    "CoordinateNoise",
    "DropSequence",
    "EmbeddingSpec",
    "Event2VecConfig",
    "Event2VecEmbedding",
    "Event2VecNet",
    "MaskTokens",
    "MaskedEventNet",
    "MergeTimeHeads",
    "Naive2dEmbedding",
    "NaiveEmbedding",
    "Neighbor1dNaive2dEmbedding",
    "Neighbor1dNaiveEmbedding",
    "Neighbor2dNaiveEmbedding",
    "OffsetCoordinate",
    "PostNormEncoderLayer",
    "SpatialDownsample",
    "Time2Vec",
    "TokenClassifier",
    "TokenEncoder",
    "build_embedding",
    "build_temporal_encoding",
    "gaussian_neighbour_weights",
    "offset_time",
    "parse_embedding",
]
