"""Step 3, risk identification: every detector, on one scoring contract (:mod:`.base`).

Stage 1 (single entity): the rule engine (:mod:`.expressions`, :mod:`.rules`) and the behaviour
models (:mod:`.models`). Stage 2 (groups): :mod:`.group`. Stage 3 (graphs): :mod:`.graph`.

Every detector is a :class:`~fraudkit.identification.base.BaseScorer` (a scikit-learn estimator with
``decision_scores_``, ``threshold_``, ``labels_``, ``entity_ids_``, ``reasons_``); the plain functions
are one-call wrappers of them:

=====================================================  ==========================  ==========================
detector                                               scores                      one-call function
=====================================================  ==========================  ==========================
:class:`.rules.RuleScorer`                             rows of one entity type     :meth:`.rules.RuleSet.evaluate`
:class:`.models.LogisticScorer`, ``BoostingScorer``    accounts
:class:`.group.clusters.DeviceClusterer`               devices
:class:`.group.clusters.CoActionMiner`                 accounts
:class:`.graph.dense.DenseSubgraphDetector`            accounts (matrix rows)      :func:`.graph.dense.fraudar`
:class:`.graph.association.AssociationNetwork`         association groups
:class:`.graph.communities.CommunityScreener`          communities
:class:`.graph.communities.CaptureScorer`              accounts                    :func:`.graph.communities.capture_scores`
:class:`.graph.consolidation.ConsolidationScorer`      accounts
:class:`.graph.propagation.LabelPropagation`           graph nodes                 :func:`.graph.propagation.label_propagation`
:class:`.graph.propagation.PersonalizedPageRank`       graph nodes                 :func:`.graph.propagation.personalized_pagerank`
=====================================================  ==========================  ==========================
"""
