"""The readable source of ``omni_recall.json``, the recall benchmark's own dataset.

    python bench/data/make_omni_recall.py   # rewrites bench/data/omni_recall.json

Twelve long conversations (about fifty turns each), each over several sessions months apart: a person and the
assistant, or two friends. Questions are phrased unlike the turns that answer them (synonyms,
pronouns, relative dates), and the conversations hold distractors (the sister's cat beside the
dog, the company that said no beside the one that said yes).

The format below: ``conversation ID: description``, ``speakers X=Name, ...``, then for each
session ``session START`` and one turn a line, ``X: text``, ending in ``#tag`` when a question
needs it; turns are two minutes apart. A question is ``category: question -> tag tag``.
Turn ids are ``D<session>:<turn>``, as in LoCoMo.
"""

# ruff: noqa: E501

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("omni_recall.json")
MINUTES_PER_TURN = 2
CATEGORIES = ("single-hop", "multi-hop", "temporal")


def parse(source: str) -> list[dict[str, Any]]:
    """The conversations of ``source`` in the benchmark's format."""
    conversations: list[dict[str, Any]] = []
    conv: dict[str, Any] = {}
    names: dict[str, str] = {}
    tags: dict[str, str] = {}
    session, started, n = 0, datetime.min, 0
    for line in source.strip().splitlines():
        head, _, rest = line.partition(" ")
        if not line.strip():
            continue
        if head == "conversation":
            conv = {"id": rest.partition(":")[0], "turns": [], "questions": []}
            conversations.append(conv)
            names, tags, session = {}, {}, 0
        elif head == "speakers":
            names = dict(pair.strip().split("=") for pair in rest.split(","))
        elif head == "session":
            session, started, n = session + 1, datetime.fromisoformat(rest), 0
        elif line.split(":")[0] in CATEGORIES:
            category, _, rest = line.partition(": ")
            question, _, evidence = rest.rpartition(" -> ")
            qid = f"{conv['id']}/q{len(conv['questions']) + 1}"
            ids = [tags[tag] for tag in evidence.split()]
            conv["questions"].append({"id": qid, "question": question, "evidence": ids, "category": category})
        else:
            who, _, text = line.partition(": ")
            n += 1
            tid = f"D{session}:{n}"
            body, hash_, tag = text.rpartition(" #")
            if hash_:
                assert tag not in tags, f"{conv['id']}: tag {tag} twice"
                tags[tag], text = tid, body
            when = started + timedelta(minutes=MINUTES_PER_TURN * (n - 1))
            turn = {
                "id": tid,
                "session": session,
                "time": when.isoformat(),
                "speaker": names[who],
                "text": text,
            }
            conv["turns"].append(turn)
    return conversations


def validate(data: dict[str, Any]) -> None:
    qids: set[str] = set()
    for conv in data["conversations"]:
        tids = [t["id"] for t in conv["turns"]]
        assert len(tids) == len(set(tids)), f"{conv['id']}: turn ids repeat"
        assert len({t["session"] for t in conv["turns"]}) >= 3, f"{conv['id']}: fewer than 3 sessions"
        assert len({t["speaker"] for t in conv["turns"]}) == 2, f"{conv['id']}: not two speakers"
        for q in conv["questions"]:
            assert q["id"] not in qids, f"question id {q['id']} twice"
            qids.add(q["id"])
            assert q["evidence"] and set(q["evidence"]) <= set(tids), f"{q['id']}: unknown evidence"
            assert q["category"] in CATEGORIES, q["id"]


def dumps(data: dict[str, Any]) -> str:
    """JSON with one turn or question a line (readable, and diffs stay small)."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    convs = []
    for conv in data["conversations"]:
        turns = ",\n   ".join(one(t) for t in conv["turns"])
        questions = ",\n   ".join(one(q) for q in conv["questions"])
        convs.append(
            f'{{"id": {one(conv["id"])},\n  "turns": [\n   {turns}],\n  "questions": [\n   {questions}]}}'
        )
    body = ",\n ".join(convs)
    return f'{{"name": {one(data["name"])},\n "conversations": [\n {body}]}}\n'


def main() -> None:
    data = {"name": "omni_recall", "conversations": parse(SOURCE)}
    validate(data)
    OUT.write_text(dumps(data), encoding="utf-8")
    convs = data["conversations"]
    questions = [q for c in convs for q in c["questions"]]
    counts = {c: sum(q["category"] == c for q in questions) for c in CATEGORIES}
    turns = sum(len(c["turns"]) for c in convs)
    print(f"{OUT.name}: {len(convs)} conversations, {turns} turns, {len(questions)} questions {counts}")


SOURCE = """
conversation c1: Ana, a nurse, with the assistant: a puppy, night shifts, a knee, Lisbon
speakers A=Ana, B=assistant
session 2024-01-14T19:05
A: Hi! Big news: I finally adopted a puppy from the shelter on Saturday. We called him Miso. #miso
B: Congratulations! Miso is a great name. How old is he, and what breed?
A: They think he's a beagle mix, about ten weeks old. He cried all night in his crate.
B: That's very normal for the first nights. A warm blanket, an old T-shirt that smells of you and a ticking clock near the crate usually help.
A: My sister Carla has a cat, Pepper, and she's already worried about bringing her over at Easter. #pepper
B: Keep the first meeting short, let Pepper watch from somewhere high, and reward Miso for staying calm. Most puppies adapt quickly.
A: Another thing: the ward manager asked if I'd switch to nights from March. #nights
B: That's a big change. Are you leaning towards yes?
A: Probably. It pays about fifteen percent more and I'd have the mornings free for walks.
B: Sounds like a fair trade if you protect your sleep. Blackout curtains and a fixed sleep window make the biggest difference.
session 2024-02-10T18:20
A: Miso graduated from puppy class today! Well, he passed the sit and stay part.
B: Well done to both of you! What's next, recall training?
A: Yes, the trainer wants us to practise coming back in the park with a long lead.
B: Use really tasty treats, cheese or chicken, and only call him when you're sure he'll come.
A: Carla visited with her boyfriend Rui. He's Portuguese, so he wrote us a list of places for a trip someday.
B: Local tips are the best. Did Miso behave?
A: He stole Rui's glove and ran laps around the sofa.
B: Classic puppy. A chew toy in every room gives him something legal to steal.
A: My colleague Inês did a year of nights and says the first month is the worst.
B: She's right, most people adapt after three or four weeks. Protect that first month.
A: I bought a sunrise alarm clock for the days I need to be up early.
session 2024-03-22T10:40
A: Two weeks of nights done. I sleep 9 to 3 and still feel like a zombie. #zombie
B: The first month is the hardest. Try to keep the same sleep window on your days off too.
A: To make it worse I rolled my left knee running along the river on Tuesday. #knee
B: Ouch. Did someone look at it?
A: The physio says it's a mild sprain. No running for six weeks, swimming and cycling are fine. #physio
B: Six weeks passes quickly if you keep moving in the pool. Ice after sessions and don't skip the strengthening exercises.
A: Miso ate my laptop charger yesterday, so that's forty euros gone.
B: Puppies and cables... A cord protector, or keeping cables up high, saves a lot of chargers.
A: Something nice though: Carla and I booked five days in Lisbon for the end of May. #lisbon
B: Lovely! Late May is a great time to go. Where are you staying?
A: A little flat in Alfama, close to the castle.
session 2024-05-20T21:15
A: We fly out on Thursday! My neighbour Tomás said he'll take care of Miso while we're away. #tomas
B: That's kind of him. Leave him a note with feeding times and the vet's number just in case.
A: Good idea. And the knee is fine again, I ran 5 km yesterday with no pain at all. #run5k
B: Great to hear the rehab worked. Build up slowly for a few more weeks.
A: What should we eat there besides custard tarts?
B: Bifanas, grilled sardines, bacalhau à brás, and a ginjinha in a tiny bar in the old town.
A: Carla doesn't eat meat or fish, so half of that list is out for her. #vegetarian
B: Then look for caldo verde without the chorizo, grilled vegetables, and the vegetarian places in Príncipe Real.
session 2024-07-02T08:30
A: Morning after my last night shift of the block. Lisbon feels like ages ago already.
B: Welcome back to daylight! What was the highlight of the trip?
A: A fado evening in a tiny restaurant, Carla cried. And Tomás said Miso behaved perfectly, apart from one destroyed sandal. #tomas2
B: Only one sandal is a good result for a puppy.
A: Work news: from September they're putting me back on days, because of staffing. #days
B: How do you feel about that?
A: Relieved, honestly. And I signed up for the Porto half marathon in October. #porto
B: That gives you about three months to train. Want me to sketch a plan?
session 2024-08-25T16:00
A: Long run today: 16 km along the coast. Training is going well.
B: That's great progress. How is the knee with the longer distances?
A: No pain at all. I still do the physio exercises twice a week.
B: Keep them up, they're doing their job.
A: Miso is ten months now and thinks he is a lap dog. He weighs 14 kilos.
B: Beagle mixes love company. Maybe a bigger bed?
A: Tomás got a puppy too, a collie called Nuvem, so now they play every evening.
B: A playmate next door is perfect for a young dog's energy.
A: Carla wants to go back to Portugal next year, maybe the Algarve this time.
B: The Algarve in spring is lovely, fewer crowds and mild weather.
single-hop: What is Ana's dog called? -> miso
single-hop: Who looked after Ana's pet while she was in Portugal? -> tomas tomas2
single-hop: Which kinds of exercise was Ana still allowed while her leg healed? -> physio
multi-hop: Who went on holiday with Ana, and what animal does that person own? -> lisbon pepper
multi-hop: What food couldn't Ana's travel companion eat on the trip? -> lisbon vegetarian
temporal: When did Ana hurt herself jogging? -> knee
temporal: For how many months was Ana on the late rota before returning to daytime work? -> nights days
temporal: Which race is Ana entered in for the autumn? -> porto

conversation c2: Ben with the assistant: a lay-off, interviews, a gift, moving in
speakers A=Ben, B=assistant
session 2023-09-05T20:10
A: I got laid off today. The whole platform team at Northwind was cut. #laidoff
B: I'm sorry, Ben. That's a shock. Do you have severance?
A: Three months of pay, so I'm okay for a while. Just angry.
B: Anger makes sense. When you're ready, we could list what you want from the next role.
A: Backend, Python or Go, remote-friendly, and no more on-call every other week. #wants
B: That's a clear list. Want to start by updating your CV this week?
A: Yes. Also I keep saying I'll learn Japanese, maybe now is the time. #japanese
B: A daily twenty-minute habit beats a big plan. An app plus a beginner textbook like Genki works well.
session 2023-10-18T12:30
A: Update: I had a final round with Lattice Labs and a first call with a fintech called Brightpay. #interviews
B: Nice progress. How did the Lattice final go?
A: The system design part went well, the live coding was rough, I froze on a graph problem.
B: Freezing happens. If they ask for feedback, say your reasoning was right even if the code lagged.
A: Priya's birthday is on the 30th and I have no idea what to get her. #priya
B: What is she into lately?
A: She's obsessed with film photography. Shoots everything on an old Pentax. #pentax
B: Then a few rolls of Portra 400, a good strap, or a printed book of her own photos would all land well.
A: Genki chapter 3 is done, I can read hiragana now without the chart. #hiragana
session 2023-11-07T10:15
A: Lattice asked for a second live coding round. I'm practising graphs every morning now.
B: Good plan. BFS, DFS, topological sort and Dijkstra cover most interview graph problems.
A: Brightpay's second interview was with their CTO, mostly about how I'd handle incidents.
B: That plays to your on-call experience. How did it feel?
A: Relaxed, honestly. She asked about the worst outage I ever handled at my old job.
B: A good outage story shows calm and learning, that's what they want to hear.
A: Priya is doing mock interviews with me in the evenings. She's a tough interviewer.
B: That's generous of her. Practising out loud makes a big difference.
A: My severance runs out in early December, so the timing is getting tight.
B: You have two strong processes going. Let's keep one backup application alive just in case.
session 2023-12-02T09:00
A: I accepted the offer from Brightpay! Starting January 8th. #offer
B: Congratulations! What made you pick them?
A: Fully remote, Go backend, and on-call is one week in six. Lattice rejected me anyway, ha. #whybp
B: That ticks every item on your list from September.
A: Priya loved the photo book by the way, she cried a bit.
B: That's wonderful, a very personal gift.
A: We're also moving in together in February, to a two-bedroom in Leith. #leith
B: Big month coming. Do you have movers booked?
session 2024-02-11T18:45
A: Boxes everywhere. The van is booked for the 17th. #van
B: Label boxes by room and keep a first-night box with kettle, chargers and bedding.
A: Good call. First month at the new job went well, my lead is called Daniela and she's great. #daniela
B: Glad to hear it. What are you working on?
A: Migrating the payments ledger off a Postgres monolith. Less scary than it sounds.
B: That's a meaty first project.
A: Japanese is on pause, I've missed two weeks. I'll restart after the move. #jppause
B: That's fine. Start again with short reviews of the kana so it comes back quickly.
session 2024-04-20T13:00
A: The flat is finally unpacked. Only took two months.
B: That's a normal pace, honestly. How does it feel?
A: Great. Priya turned the spare room into a darkroom for her film.
B: A home darkroom, that's dedication. Make sure it has good ventilation for the chemicals.
A: I'm back to Japanese, twenty minutes every morning while the kettle boils.
B: A perfect habit anchor. Where did you restart?
A: Chapter 4 of Genki, the verb forms are killing me.
B: Verb groups click after a few weeks of drills, keep going.
A: I've been asked to present the ledger migration at the company all-hands next month.
B: A great chance to be visible early. Want help structuring the talk?
single-hop: Which company did Ben work for before he lost his job? -> laidoff
single-hop: Who is Ben's manager at his current employer? -> daniela
multi-hop: What kind of camera does Ben's girlfriend use? -> priya pentax
multi-hop: Did the role Ben took match the wishes he listed after being let go? -> wants whybp
single-hop: Why did Ben stop his language studies for a while? -> jppause
temporal: When was Ben's first day at the payments startup? -> offer
temporal: On what date were Ben and his partner moving into their shared flat? -> leith van
temporal: How far had Ben got with his new language by mid-October? -> hiragana

conversation c3: Maya and Jonas, friends: pottery, a band, a hip operation, a move to Berlin
speakers M=Maya, J=Jonas
session 2023-04-02T16:00
M: Guess who finally signed up for the wheel-throwing class at the community studio? #pottery
J: No way! You've been talking about it for years.
M: Thursdays, 7 to 9. My first bowl came out looking like an ashtray.
J: Every potter starts with an ashtray. Big news here too: the band got a gig! #gig
M: The Cold Harbours are playing live?? Where?
J: The Crown on Mill Street, May 12th. On bass, obviously. #crown
M: I'll be there, front row. Is your dad coming?
J: He's having his hip replaced at the end of April, so probably not. #hip
M: Oh no, I hope it goes smoothly. Tell him I said hi.
session 2023-05-14T11:30
M: Still buzzing from last night. The Crown was packed!
J: It was! Did you hear the bit where my amp cut out?
M: Nobody noticed, honestly. You just kept smiling.
J: Felix noticed. He won't shut up about it.
M: I had the interview with the Berlin studio on Thursday, by video. Three rounds in one afternoon.
J: How did it go?
M: Good, I think. They want a trial project, a poster series for a museum.
J: You'll smash it. Dad says thanks for the card by the way, he's in hospital until Friday.
M: Give him my best. Does the new hip hurt?
J: Less than the old one, he says.
session 2023-06-15T21:30
J: Dad's home and already walking with a frame. The surgeon was amazed. #dadhome
M: That's such a relief! Give him my love.
J: Will do. The gig was wild, thanks for coming. The Crown wants us back in September.
M: You were amazing. Your drummer though, did he lose a stick during the second song? #drummer
J: Twice. Felix is a menace. #felix
M: Big news from me: I got the job in Berlin! The design studio I interviewed with in May. #berlin
J: WHAT. Congratulations! When do you go?
M: Start of September. I need to find a flat there, which everyone says is a nightmare. #sept
J: My cousin Lena lives in Neukölln, I'll ask her if she knows anything. #lena
session 2023-08-28T19:10
M: Packing up. I'm giving my kiln shares to the girl from class.
J: You're taking the pots though, right?
M: The good ones. Lena found me a sublet in Neukölln, three streets from her! #sublet
J: Told you she'd come through. Is the rent okay?
M: 950 for a one-bedroom, which apparently is a bargain. #rent
J: Prices there are wild. We booked the second Crown show for September 22nd, so you'll miss it.
M: Noooo. Film it for me.
J: Felix will probably be filming himself anyway.
session 2023-11-10T22:05
M: Two months in Berlin. German is hard, but I found a pottery studio in Kreuzberg. #kreuzberg
J: Of course you did. Any good?
M: They have a gas kiln, so I'm doing raku firing now. Work is intense but the team is lovely. #raku
J: Dad's doing physio twice a week and wants to walk the coast path next spring. #coastpath
M: Tell him I'm proud of him. How's the band?
J: We're recording an EP in January, four songs. #ep
M: I'll fly back for the release party, promise.
J: Holding you to that.
session 2024-01-21T20:15
J: Band drama: Felix quit on Tuesday and un-quit on Wednesday.
M: Classic Felix. Is everything okay now?
J: Fine, he just wanted a bigger share of the merch money.
M: Musicians. How's your dad?
J: He walked five kilometres on the flat last week, without the frame.
M: That's amazing. The coast path is on, then!
J: He's already bought new boots. How's Berlin in winter?
M: Grey and freezing. The kiln is in the courtyard, so firing days feel like camping.
J: Worth it for the pots?
M: Always. I sold three bowls at a Christmas market in December.
single-hop: What instrument does Jonas play? -> crown
single-hop: Who plays the drums in Jonas's group? -> drummer felix
single-hop: How much does Maya pay each month for her apartment in Germany? -> rent
multi-hop: Who helped Maya find somewhere to live, and how is that person related to Jonas? -> lena sublet
multi-hop: What technique does Maya use at her new ceramics place, and which district is it in? -> kreuzberg raku
temporal: When did Jonas's father have his operation? -> hip
temporal: When did Maya begin working abroad? -> sept
temporal: What were the musicians planning for the start of 2024? -> ep

conversation c4: Rosa with the assistant: an allotment, tomatoes, her grandson
speakers A=Rosa, B=assistant
session 2023-02-20T10:15
A: Good morning. I finally got the allotment! Plot 14 at Greenhill, after three years on the waiting list. #plot
B: How wonderful, Rosa! Three years is a long wait. What do you want to grow first?
A: Tomatoes, definitely. My late husband grew San Marzano every summer, I want to carry on. #sanmarzano
B: A lovely way to remember him. Start the seeds indoors in March, on a sunny windowsill.
A: The previous tenant left a compost heap that smells awful.
B: That usually means too much green material and too little air. Turn it and add cardboard or dry leaves.
A: My grandson Leo says he'll help on Saturdays, he's nine. #leo
B: Children love allotments. Give him his own small bed: radishes and sunflowers grow fast enough to keep him interested.
session 2023-04-30T15:40
A: The slugs ate half my lettuces overnight. I could cry. #slugs
B: Beer traps and copper tape help, and collecting them with a torch after rain works surprisingly well.
A: I don't want to use pellets because of the hedgehogs. #pellets
B: Good instinct. Wool pellets or nematodes are safe alternatives.
A: The tomato seedlings are 20 cm tall on the windowsill, when can they go out? #seedlings
B: After the last frost, usually mid to late May where you are. Harden them off for a week first.
A: Leo planted sunflowers and named the tallest one Gerald. #gerald
B: Gerald the sunflower, perfect. Measure him every week with Leo.
A: I'm also thinking about a small greenhouse, the neighbours on plot 12 have one.
session 2023-06-05T09:30
A: The tomato plants are out on the plot, twelve of them in two rows.
B: Lovely. Are you staking them or using cages?
A: Bamboo canes, like Antonio always did. I pinch out the side shoots every few days.
B: Exactly right for cordon tomatoes. Feed them weekly once the first flowers set.
A: Leo's radishes were ready in four weeks and he ate them all in one go.
B: Instant results, the best way to hook a young gardener.
A: The neighbour on plot 12, Mr Singh, gave me some courgette plants.
B: Careful, two courgette plants feed a whole street by August.
A: The slugs are better since I put copper tape round the beds.
B: Good, keep checking after rain.
session 2023-07-14T18:20
A: Heatwave. I'm watering every evening and the water butt is empty.
B: Water deeply every two or three days rather than a little daily, and mulch to keep moisture in.
A: Good news: the first ripe tomatoes this week! Just like the ones Antonio used to grow. #ripe
B: That must feel very special.
A: It does. I bought the greenhouse in June, a 6 by 8 polycarbonate one, £480. #greenhouse
B: A good size. You can start chillies and aubergines in it next year.
A: Gerald is taller than Leo now, 2 metres 10. #gerald2
B: Leo must be thrilled.
session 2023-10-03T11:00
A: The garden society asked me to enter my tomatoes in the harvest show next Saturday. #show
B: You should! Pick uniform fruit, same size and ripeness, with the green calyx still on.
A: I also want to plant garlic for next year. When?
B: October to November is ideal, before the ground freezes. Pointy end up, about 15 cm apart.
A: Leo is saving seeds from Gerald to plant in spring. #seeds
B: That's a lovely tradition to start.
A: The hedgehog family is still around, I saw three babies under the shed. #hedgehogs
B: They'll love a pile of leaves in a quiet corner for hibernation.
session 2023-11-28T14:10
A: I came second at the harvest show with my tomatoes! A red rosette.
B: Congratulations, Rosa! What won?
A: Mr Singh's beefsteaks, of course. He's been showing for twenty years.
B: Second place in your first year is remarkable.
A: The garlic is in, three rows, and the greenhouse is full of salad leaves for winter.
B: Winter lettuce and mizuna do well under cover.
A: Leo wants to grow a giant pumpkin for Halloween next year.
B: Start it under cover in April and give it lots of manure.
A: I put a hedgehog house by the compost bins.
B: Perfect spot, warm and quiet.
single-hop: How long did Rosa wait before she got her vegetable patch? -> plot
single-hop: What did Rosa's new glasshouse cost her? -> greenhouse
single-hop: Why won't Rosa put down chemical slug killer? -> pellets
multi-hop: What was the name of Rosa's husband, and which variety did he grow? -> sanmarzano ripe
multi-hop: How tall did the flower the boy named grow? -> gerald gerald2
temporal: When did Rosa pick her first ripe crop? -> ripe
temporal: In which month did Rosa buy the greenhouse? -> greenhouse
temporal: What was destroying Rosa's salad at the end of April? -> slugs

conversation c5: Kenji with the assistant: cholesterol, sourdough, a dinner party
speakers A=Kenji, B=assistant
session 2024-02-03T19:30
A: My doctor says my LDL is 4.9 and I need to change how I eat. #ldl
B: That's worth acting on. Did she suggest medication, or diet first?
A: Diet first, then a recheck in three months. I love ramen and fried chicken, so this hurts.
B: You don't have to give them up entirely. More oats, beans, nuts and oily fish, and fried food as a treat.
A: I started a sourdough starter yesterday. My daughter named it Doughbi-Wan. Don't ask. #starter
B: Doughbi-Wan Kenobi, excellent. Feed it daily at room temperature and it should be lively in a week.
A: Is sourdough okay for the cholesterol thing?
B: Bread isn't the main issue; wholegrain sourdough is a fine choice. Watch the butter on it.
session 2024-03-09T12:00
A: First loaf from Doughbi-Wan! Flat as a pancake, but tasty.
B: First loaves often spread. A longer bulk ferment and tighter shaping will give more height.
A: My daughter ate half of it with honey before I could take a photo.
B: The best review a baker can get.
A: I've been walking to work instead of taking the bus, about 35 minutes each way.
B: That's over an hour of walking a day, great for cholesterol and mood.
A: Mariko lent me a cookbook of Buddhist temple cooking, shojin ryori.
B: Lots of tofu, sesame and seasonal vegetables. Perfect for your new diet.
A: My wife doubts I'll keep this up past spring.
B: Habits stick when they're easy. Keep the walk and the breakfast, and the rest follows.
session 2024-04-12T20:05
A: I'm hosting a dinner for eight on the 27th. One guest, Mariko, has a severe peanut allergy. #peanut
B: Then skip peanuts entirely, check sauces like satay and some curry pastes, and keep labels for her to read.
A: I was planning a Thai green curry, is that risky?
B: Most green curry pastes are peanut-free, but check the labels for traces and serve no peanut garnish.
A: The sourdough is doing great, I bake twice a week now.
B: Impressive. Have you tried a rye loaf yet?
A: Not yet. I've swapped my morning egg-and-bacon for oatmeal with walnuts. #oatmeal
B: That's one of the most effective swaps for LDL.
A: My wife says I'm more fun when I'm not eating fried chicken. I'll choose to ignore that.
session 2024-06-08T09:45
A: Results are back: LDL is down to 3.8! #ldl2
B: That's a big drop in four months. Well done, Kenji.
A: The doctor wants it under 3, so no statins yet, another test in the autumn. #under3
B: Keep going with what's working. Daily soluble fibre like psyllium could help with the last bit.
A: The dinner went well, Mariko brought her own mochi for dessert. #mochi
B: Sounds like a lovely evening.
A: I want to try a ramen broth that isn't pure pork fat. Ideas?
B: A chicken and kombu broth with shiitake gives a lot of depth with much less fat than tonkotsu.
session 2024-07-27T19:10
A: Made the chicken and kombu ramen. My daughter says it's better than the restaurant's.
B: High praise! Did you make your own noodles too?
A: Not yet, that's next. I finally tried a rye loaf, 40% rye, very dense.
B: Rye is always denser. More water and a longer proof help.
A: The nurse called to book my next blood test for September.
B: Good, that gives you the whole summer to keep going.
A: We're having a barbecue next week, and I'm grilling mackerel instead of sausages.
B: Mackerel is full of omega-3, a great choice for the heart.
A: Mariko and her husband are coming, so the satay stays off the menu again.
B: Thoughtful. Grilled corn with miso butter is a safe crowd-pleaser.
session 2024-09-21T14:20
A: Third test: 2.9. Under the target! #ldl3
B: Fantastic! How do you feel?
A: Lighter, and I've lost 6 kilos since February. #kilos
B: That's a great side effect.
A: I entered my rye sourdough in the village baking contest next month. #contest
B: Good luck! What kind of rye?
A: 70% rye with caraway seeds, the way my grandmother made it. #caraway
B: Sounds delicious, and very traditional.
single-hop: What name did Kenji's kid give the bread culture? -> starter
single-hop: Which ingredient did Kenji have to leave out of his party menu because of a guest? -> peanut
single-hop: What does Kenji have for breakfast now? -> oatmeal
multi-hop: By how much did Kenji's bad cholesterol fall between his first and second blood tests? -> ldl ldl2
multi-hop: What loaf is Kenji entering in the competition, and what goes into it? -> contest caraway
temporal: When did Kenji host his dinner guests? -> peanut
temporal: When did Kenji's blood results first reach his doctor's goal? -> under3 ldl3
temporal: How much weight had Kenji shed by late September? -> kilos

conversation c6: Liam with the assistant: saving for a flat, freelance invoices, a car
speakers A=Liam, B=assistant
session 2023-03-01T21:00
A: I want to finally get serious about saving for a deposit on a flat. #deposit
B: Great goal. How much do you need, and by when?
A: Around £30k, ideally in two years. I have £8,400 saved now. #30k
B: That's about £900 a month. Is that realistic with your income?
A: Tight. My freelance design work is lumpy, some months £4k, some £1.5k. #freelance
B: Then set the saving as a percentage of each invoice, say 30%, rather than a fixed sum.
A: I like that. Also my car's MOT is due in April and it's making a grinding noise. #mot
B: Get the noise checked before the MOT, it's probably the brakes.
session 2023-04-12T20:30
A: Set up the 30% rule for invoices. March was a good month, £3,800 in.
B: So over £1,100 went to savings? Great start.
A: Yep. I also cancelled two streaming services and the gym I never go to.
B: Small subscriptions add up, that's maybe £60 a month.
A: The garage can look at the car next Thursday.
B: Good, don't drive it hard until then.
A: A new client, a bike shop called Spokes, wants a whole rebrand.
B: Nice! Agree the payment terms upfront: 50% deposit, the rest on delivery.
A: Good idea. My sister Aoife asked me to design a logo for her café too.
B: A lovely thing to do for her.
session 2023-05-19T18:10
A: The grinding was the brake pads and a disc, £340. Painful. #brakes
B: Unlucky, but much cheaper than ignoring it. Did it pass the MOT afterwards?
A: Yes, passed. A client, Harbour Coffee, still hasn't paid an invoice from February. £2,200. #harbour
B: Send a polite reminder with the invoice attached and a clear due date, then a late fee notice if needed.
A: I'll do that. The savings account is at £11,900 now. #11900
B: You're roughly on track. Well done.
A: My sister Aoife is getting married in Galway in August, that's going to be expensive. #aoife
B: Put a wedding line into your budget now: travel, gift, outfit, so it doesn't eat the deposit savings.
session 2023-08-07T11:25
A: Back from Ireland. Beautiful wedding, I gave a speech and didn't cry until the end. #speech
B: That sounds lovely. How did the budget hold up?
A: About £650 all in, close to what I planned. #650
B: Nicely done.
A: Harbour Coffee finally paid, after the late fee letter. #paid
B: Good, that letter usually works.
A: I'm meeting a mortgage broker next month, Sunita from a firm in town. #broker
B: Bring three months of bank statements and two years of accounts, since you're self-employed.
session 2023-11-26T16:50
A: The broker says as self-employed I can borrow about 4.5 times my average profit. #borrow
B: That's standard. What does that come to?
A: Around £180k. Flats in my area are £200-220k. #180
B: So with a £30k deposit you're close to the lower end.
A: Savings hit £19,500 this week. #19500
B: Over halfway, and ahead of schedule.
A: And the car failed again, the clutch this time. I might sell it and cycle. #clutch
B: That would also save insurance and fuel, which could go straight into the deposit.
session 2024-01-15T19:45
A: Happy new year! The car is sold, £1,900 even with the broken clutch.
B: Not bad. How's cycling in January?
A: Cold and wet but I'm weirdly enjoying it. Bought proper mudguards.
B: Mudguards are the best money a winter cyclist spends.
A: Savings are at £21,600 with the car money.
B: A great jump. You're well ahead of the two-year plan.
A: The broker thinks I should apply for a mortgage in spring, once this year's accounts are filed.
B: Makes sense, lenders like the latest full year.
A: Spokes paid their final invoice on time, what a difference.
B: Good clients are worth keeping, maybe offer them a retainer.
single-hop: Which customer was late paying Liam? -> harbour
single-hop: What caused the noise Liam's car was making? -> brakes
single-hop: Who is advising Liam on his home loan? -> broker
multi-hop: How much had Liam's savings grown from when he started to late November? -> 30k 19500
multi-hop: Where did Liam's sister hold her wedding, and what did the trip cost him? -> aoife 650
temporal: When did the coffee company finally settle its bill? -> paid
temporal: When did Liam's sibling get married? -> aoife
temporal: What went wrong with Liam's vehicle in November? -> clutch

conversation c7: Sofia and Nadia, friends: a thesis, a bakery, the Dolomites, Copenhagen
speakers S=Sofia, N=Nadia
session 2024-01-08T20:00
S: Did you finish the book club book? I couldn't get past chapter five.
N: Klara and the Sun? I loved it, cried at the end. #klara
S: Spoilers! Okay, I'll push through. My thesis defense got scheduled: March 14th. #defense
N: Eek! Are you ready?
S: Not remotely. Chapter four still needs new data from the lab.
N: You'll be fine. Oh, and I quit the agency. I'm going to work at my aunt's bakery. #bakery
S: No way! From marketing to croissants?
N: I get up at 4am now and I've never been happier.
session 2024-02-17T21:00
N: How's the thesis? You went quiet.
S: Drowning in chapter four. The lab finally sent the data, and it's messy.
N: Messy data makes for good discussion sections, or so I'm told.
S: Ha. My supervisor says I should cut the whole second experiment.
N: Ouch. Do you agree?
S: Kind of. It would save me thirty pages.
N: Meanwhile I burned forty croissants this morning. My aunt laughed for ten minutes.
S: Forty! Was the oven broken?
N: No, I was. Four am is hard.
S: Book club on Thursday, are you going? It's at Marta's this time.
N: Yes, she's making her famous tiramisu.
session 2024-03-30T11:15
S: I passed!!! Dr. Sofia Romano, thank you very much. #passed
N: DOCTOR! I'm so proud. Was the committee tough?
S: One guy grilled me about my sampling method for twenty minutes. Prof. Hale. #hale
N: Classic. We have to celebrate. A hiking trip?
S: Yes! The Dolomites in July? I've always wanted to do the Alta Via 1. #altavia
N: I'm in. I need proper boots though, mine are from school.
S: The bakery is making you strong enough to carry a backpack anyway.
N: Ha. My aunt is teaching me laminated dough, my croissants are finally getting flaky. #croissant
session 2024-05-12T15:30
S: Sent the final thesis to the library today. It's officially a bound book.
N: Frame the cover! How's the job hunt?
S: Applied to three postdocs: Zurich, Copenhagen and Leiden.
N: All rainy places. Who are you?
S: I like rain, what can I say. Have you tried your boots yet?
N: Not bought yet, I've been comparing reviews for weeks.
S: Just buy some and walk them around town.
N: The bakery is doing sourdough Sundays now, my idea!
S: Look at you, entrepreneur.
N: My aunt says if it works I can run the weekend shifts alone.
session 2024-06-25T19:40
N: Boots bought and broken in! Salomon, the waterproof ones. #boots
S: Perfect. I booked the rifugios for July 10 to 16, all six nights. #rifugio
N: Do we need crampons?
S: No, but poles and a rain jacket, the afternoon storms are real.
N: Book club picked a new one, Tomorrow, and Tomorrow, and Tomorrow. #newbook
S: I'll read it on the trip. Also, I got a postdoc offer in Copenhagen! #postdoc
N: STOP. Are you taking it?
S: I think so, it starts in October.
session 2024-08-19T09:30
S: Still thinking about that sunrise at Rifugio Lagazuoi. Best week of the year.
N: My legs hurt just remembering day three. Also, I adopted a kitten! Her name is Biscotti. #biscotti
S: A bakery cat named Biscotti, that's perfect.
N: She sleeps in the flour sack box. My aunt pretends to be annoyed.
S: I signed the Copenhagen contract. Moving September 28th. #signed
N: I'm going to miss you so much. I'll visit with pastries.
S: You'd better. And bring photos of Biscotti.
N: Daily, obviously.
single-hop: Who gave Sofia a hard time at her viva? -> hale
single-hop: What did Nadia name her new pet? -> biscotti
single-hop: Where does Nadia work these days? -> bakery
multi-hop: Which novel did Nadia love, and what did the reading group choose after it? -> klara newbook
multi-hop: Where is Sofia's research fellowship, and when does she relocate? -> postdoc signed
temporal: When did Sofia defend her PhD? -> defense
temporal: On which dates were the two women trekking in Italy? -> rifugio
temporal: What pastry technique was Nadia learning in spring 2024? -> croissant

conversation c8: Omar with the assistant: a guitar, a database migration, his parents, a promotion
speakers A=Omar, B=assistant
session 2023-10-02T22:10
A: I bought my first guitar today, a second-hand Yamaha acoustic for 120 euros. #guitar
B: Exciting! Are you teaching yourself or taking lessons?
A: YouTube for now. My fingertips already hurt after half an hour.
B: That's normal; calluses form in two or three weeks. Short daily sessions are best.
A: At work I'm leading the migration of our customer database to the cloud, deadline end of November. #migration
B: That's a big responsibility. What's the riskiest part?
A: The cutover weekend. If it fails, billing stops.
B: Rehearse on a copy of production and write down a rollback plan before the real weekend.
session 2023-11-12T21:45
A: The rehearsal of the cutover went badly, the billing service couldn't reach the new database.
B: Better now than on the real weekend. Do you know why?
A: A firewall rule nobody had documented. Fixed it, we rehearse again on Thursday.
B: Add it to the runbook so it can't surprise anyone again.
A: Guitar is going slowly. I can play G, C and D but the F chord is impossible.
B: Everyone struggles with F. Try the small F on the top four strings first.
A: My sister in Alexandria had a baby boy, so my parents are even more excited about their trip.
B: Congratulations, Uncle Omar! Will they bring photos?
A: Hundreds, I'm sure.
B: Make space on your phone.
session 2023-12-15T19:00
A: We finished the cutover on November 25th. Zero downtime! #done
B: Congratulations, that's a big win.
A: My boss, Ingrid, took the team out for dinner.
B: Well deserved.
A: My parents are visiting from Cairo over the holidays, arriving December 22nd. #parents
B: How long are they staying?
A: Three weeks. Mum wants to see snow, so we're going to the mountains for two days. #snow
B: Book somewhere with easy access, mountain roads can be tricky in winter.
A: Guitar update: I can play Wonderwall, badly.
session 2024-03-05T20:30
A: Ramadan starts next week. I want to keep my running schedule, any advice? #ramadan
B: Run shortly before iftar at an easy pace, or after dinner, and keep the distance down. Hydrate well between iftar and suhoor.
A: Mum still talks about the snow in Zell am See, she sent the photos to all her friends. #zell
B: That's lovely, sounds like the trip was a hit.
A: I'm starting real guitar lessons with a teacher called Bruno, on Thursdays. #bruno
B: A teacher will fix bad habits early. What do you want to learn?
A: Fingerstyle. I want to play Nick Drake songs. #nickdrake
B: Pink Moon is a great goal.
session 2024-05-28T18:15
A: I got promoted to engineering manager, Ingrid recommended me. #promoted
B: Congratulations, Omar! How do you feel?
A: Excited and nervous. I'll have five people reporting to me. #five
B: Start with one-to-ones with each of them in the first two weeks.
A: The fasting month went okay for running, I kept about 20 km a week. #20km
B: That's a solid result while fasting.
A: Bruno says I'm ready for my first open mic in June. #openmic
B: You should do it, even if you're nervous.
session 2024-07-14T10:30
A: I did it! I played Pink Moon and one of my own songs in front of people.
B: You wrote a song? How did it go?
A: My hands were shaking but people clapped. Bruno was in the audience.
B: That's a huge step from the F chord struggles.
A: Managing is harder than I thought. Two of my reports want the same promotion.
B: Be transparent about the criteria and give both a clear path.
A: My parents want me to visit them in December this time.
B: That would be lovely after they came to you last winter.
A: I'm thinking of running the Berlin marathon next year.
B: Build up to 50 or 60 km a week over several months, with one long run each weekend.
single-hop: How much did Omar pay for his instrument? -> guitar
single-hop: Who is Omar's music tutor? -> bruno
single-hop: Which singer's music does Omar want to be able to play? -> nickdrake
multi-hop: Where did Omar take his mother to see winter weather, and what city was she visiting from? -> parents snow zell
multi-hop: Who put Omar forward for his new role, and how big is his team? -> promoted five
temporal: When did Omar's team switch the customer data over to the new platform? -> done
temporal: When did Omar's family land for their holiday visit? -> parents
temporal: When is Omar going to perform in public for the first time? -> openmic

conversation c9: Chloe with the assistant: planning a wedding
speakers A=Chloe, B=assistant
session 2023-01-15T14:00
A: Sam proposed on New Year's Eve! We want to get married in September. #proposed
B: Congratulations, Chloe! That gives you about eight months. Have you thought about a budget?
A: £15k max, both families are chipping in a bit.
B: Good. The venue and catering usually take about half of that.
A: We saw a barn near Bath, Hollybrook Farm, £5,500 for the day. #hollybrook
B: That's within range. Does it include tables, chairs and a bar?
A: Tables and chairs yes, bar no. We also looked at a hotel in Bristol but it felt soulless.
B: Atmosphere matters. Ask Hollybrook about the bar licence and external caterers.
session 2023-03-20T19:30
A: Booked Hollybrook for September 16th! #booked
B: Wonderful, now the date is real. Next: caterer and photographer.
A: My aunt Maureen is furious that we're not inviting kids. #maureen
B: That's a common friction point. A kind but firm message about the venue's capacity can help.
A: We said it's about numbers, 90 guests max. She's still sulking. #90
B: Give her time. Maybe offer her a special role on the day.
A: The caterer we like is Fig & Fennel, they do a sharing-table menu. #figfennel
B: Sharing tables feel warm and relaxed in a barn. Ask about a vegan option.
session 2023-05-30T12:10
A: Dress found!! Second-hand, from a shop in Clifton, £700 instead of £2,000. #dress
B: What a find! Does it need alterations?
A: Hem and straps, £150 more. #alterations
B: Still a bargain.
A: Honeymoon debate: Sam wants Iceland, I want Japan.
B: Could you compromise on timing: one now and one for your first anniversary?
A: Maybe. Japan in October would be lovely for the autumn leaves.
B: It's beautiful then, especially Kyoto.
A: Aunt Maureen agreed to do a reading at the ceremony. Peace restored. #reading
session 2023-07-10T19:15
A: Tasting with the caterer today. The lamb was incredible, the vegan tagine even better.
B: Sounds delicious. Have you fixed the menu?
A: Almost. Sam's dad wants a whisky toast, so we need the bar licence extended.
B: Ask the venue, they'll know the local rules.
A: The photographer is booked, a friend of a friend called Jess.
B: Great. Send her a shot list with the family groups you need.
A: Invitations are out: 86 yes so far, waiting on four replies.
B: Close to your limit, good.
A: Mum wants to wear a hat bigger than my dress.
B: Let her, it's her day too.
session 2023-08-25T20:45
A: Three weeks to go. The seating plan is my nemesis.
B: Start with the tables that have constraints, then fill in the rest.
A: Sam's best man is his brother Tom, and he has already lost the rings once. #tom
B: Maybe the rings stay with a more reliable person until the ceremony.
A: We decided: Japan for the honeymoon, Iceland for our first anniversary. #decided
B: A great compromise, you both get your trip.
session 2023-10-01T10:00
A: Back from the honeymoon! Kyoto was magical, we saw a geiko in Gion. #kyoto
B: Welcome back! And how was the big day itself?
A: Perfect except for the rain during the photos. Everyone still danced in the barn until midnight. #rain
B: Rain on a wedding day is supposed to be good luck.
A: Aunt Maureen cried during her reading, and then cried more at the ceilidh.
B: Sounds like she had a wonderful time after all.
single-hop: Near which city was Chloe's reception venue? -> hollybrook
single-hop: What was the maximum number of people invited to Chloe's wedding? -> 90
single-hop: Who did the food at Chloe and Sam's wedding? -> figfennel
multi-hop: What did Chloe's gown cost in total, including the changes made to it? -> dress alterations
multi-hop: Which relative objected to the no-children rule, and what part did she end up playing? -> maureen reading
temporal: When did Sam pop the question? -> proposed
temporal: What date did Chloe and Sam get married? -> booked
temporal: Where are Chloe and Sam travelling in autumn 2024? -> decided

conversation c10: David with the assistant: migraines, a neurologist, cycling
speakers A=David, B=assistant
session 2024-03-10T07:50
A: Third migraine this week. I can't work like this. #migraines
B: I'm sorry, David. Have you noticed any pattern: sleep, food, screens, caffeine?
A: I drink maybe five coffees a day. And I sleep about six hours because of the kids. #coffee
B: Both can be triggers. Cutting caffeine suddenly can cause headaches too, so taper slowly.
A: My GP referred me to a neurologist, the appointment is April 18th. #neuro
B: Good. Keep a headache diary until then: time, food, sleep, what helped.
A: The twins start swimming lessons on Saturdays now, so my mornings are gone anyway.
B: Swimming is great for them. Maybe take turns with your partner.
session 2024-04-06T22:10
A: The headache diary is depressing. Eleven days out of thirty with some pain.
B: It's useful data though. Any patterns yet?
A: Mondays are bad, and the days after I sleep less than six hours.
B: Sleep looks like a strong trigger. Could you and your partner split the night wake-ups?
A: The twins are three, they still wake up at 5am every single day.
B: A toddler clock that changes colour at a set time helps some kids wait.
A: I switched my afternoon coffee to decaf this week.
B: A good first step in the taper.
A: Work gave me a standing desk, my neck already feels better.
B: Neck tension can feed headaches, so that may help too.
session 2024-05-02T21:05
A: The neurologist, Dr. Okafor, thinks it's migraine with aura, nothing scary. #okafor
B: That's reassuring. Did she suggest treatment?
A: A preventive, propranolol at a low dose, and a triptan for attacks. #propranolol
B: Those are standard. Any side effects so far?
A: Cold hands and vivid dreams.
B: Both are common with propranolol and often ease after a few weeks.
A: I'm down to two coffees, before noon only. #twocoffees
B: That's a big change, well done.
A: I've started cycling to the office, 9 km each way. #cycling
session 2024-07-19T18:30
A: Only two migraines in June. Best month in years. #june
B: That's a huge improvement.
A: The cycling helps too, I think. I bought a proper road bike, a Trek Domane.
B: Nice bike. Comfortable geometry for commuting.
A: The diary shows red wine is a trigger. Annoying, I love a glass of Rioja. #wine
B: Maybe test small amounts, but if it's consistent it's worth respecting.
A: Emma and I are taking the twins to Brittany in August. #brittany
B: Sounds fun. Keep your sleep routine on holiday if you can.
session 2024-08-30T09:00
A: Back from France. The twins want to live on a beach now.
B: Understandable. How were the headaches on holiday?
A: Mostly fine. The crêpes were worth every calorie.
B: Any other holiday stories?
A: We got caught in a storm at Saint-Malo, everyone soaked, the twins delighted.
B: The best holiday memories are the chaotic ones.
A: I'm training for a long charity ride in October, doing 60 km on Saturdays now.
B: Add 10 km to the long ride every two weeks and you'll be ready.
A: The neurologist's office moved my follow-up to October.
B: Good, you'll have the whole summer's data to discuss.
session 2024-10-11T20:00
A: Follow-up with Dr. Okafor: she's happy, we keep the same dose for six more months.
B: Good news. How was Brittany?
A: Lovely, the twins learned to bodyboard. One migraine on the ferry though. #ferry
B: Travel days are classic triggers; early nights and water help.
A: I did a 100 km charity ride last Sunday for the migraine trust. #100km
B: Amazing! That's a long way.
A: Raised £1,250. #raised
B: Fantastic result.
single-hop: What medication was David prescribed? -> propranolol
single-hop: Which drink did David's headache log show sets off his attacks? -> wine
single-hop: What is the name of David's partner? -> brittany
multi-hop: How long was David's fundraising bike event and how much money did it bring in? -> 100km raised
multi-hop: How has David's caffeine habit changed since he first complained about headaches? -> coffee twocoffees
temporal: When was David's first appointment with the specialist? -> neuro
temporal: How many attacks did David have in the first month of summer? -> june
temporal: What happened to David on the boat crossing in August? -> ferry

conversation c11: Elena and Marco, friends: a ruin in Umbria, a startup, a niece
speakers E=Elena, M=Marco
session 2023-05-05T18:00
E: We bought it. The ruin in Umbria. I'm officially insane. #ruin
M: You actually did it! The farmhouse near Spoleto?
E: That's the one. 120 square metres, no roof on the barn, olive trees everywhere.
M: How many olive trees?
E: Forty-two. Paolo from the village will teach me how to prune them. #paolo
M: Meanwhile I'm drowning. Our seed round closes next week, we're raising 1.2 million. #seed
E: Marco! That's huge. Still the app for booking padel courts? #padel
M: Yes, CourtUp. 30 clubs signed so far. #courtup
session 2023-06-18T17:40
E: The builders arrived with a crane today. The whole village came to watch.
M: The most exciting thing in Spoleto since the festival.
E: Paolo showed me how to prune, and I took way too much off the first tree.
M: Olive trees forgive, right?
E: He says so. He also says I prune like an architect, too symmetric.
M: Ha. We signed our fiftieth club, in Milan.
E: Amazing. Are you hiring?
M: Two engineers and a salesperson. Know anyone?
E: My cousin Dario does sales for a sports brand, I'll send you his number.
M: Perfect.
session 2023-07-22T10:20
M: Round closed! 1.4 million in the end, oversubscribed. #closed
E: Congratulations!! Champagne on me when you visit.
M: How's the roof?
E: The builder, Signor Rossi, started in June. The barn roof will take until October. #rossi
M: Italian builders, so December then.
E: Ha. My car died on the white road to the house, I'm driving Paolo's old Panda now. #panda
M: The red one? Iconic.
E: Sky blue. With a goat smell.
session 2023-10-09T19:55
E: Roof is finished! Only two weeks late, a miracle. #roof
M: Told you December... okay, I was wrong.
E: First olive harvest next month, Paolo says we'll get around 300 litres of oil. #harvest
M: Save me a bottle. My sister Giulia had her baby, a girl, Alma. #alma
E: Zia Elena sends kisses! How is Giulia?
M: Tired and happy. I'm the godfather. #godfather
E: You'll spoil her rotten.
M: Obviously. CourtUp now has 85 clubs, we're launching in Spain in spring. #spain
session 2023-12-03T12:30
E: Picking done! Four days in the trees with Paolo's family and two friends from Rome.
M: How did it feel?
E: Like being part of something very old. My back disagrees.
M: When do you get the oil?
E: The mill presses it this week. Paolo is nervous, it's been a dry year.
M: Fingers crossed. I visited Giulia last weekend and the baby smiled at me.
E: Babies smile at everyone, Marco.
M: Not like this. Also, we hired a country manager for Spain, Lucía.
E: So the Spanish launch is real!
M: March, if the app translation is done.
session 2024-01-30T21:40
E: The oil came out peppery and green, 280 litres. I'm selling some to a shop in Perugia. #oil
M: You're a farmer now. Who would have thought.
E: I'm quitting the architecture firm in June to run the house full-time as a B&B. #bnb
M: Brave. Do you have a name?
E: Casa delle Querce, after the oaks by the gate. #querce
M: Beautiful. I'll be your first guest.
E: You'll be paying full price!
M: Fine, but Alma gets a discount.
single-hop: Who is teaching Elena to look after her olive grove? -> paolo
single-hop: What does Marco's company make? -> padel courtup
single-hop: What is Elena's guesthouse going to be called? -> querce
multi-hop: How did Elena's first pressing compare with the neighbour's forecast? -> harvest oil
multi-hop: How much did Marco's startup bring in compared with what it set out to raise? -> seed closed
temporal: When was the work on the barn completed? -> roof
temporal: When was Marco's niece born? -> alma
temporal: When does Elena plan to leave her job? -> bnb

conversation c12: Hana with the assistant: emigrating to Canada with an old cat
speakers A=Hana, B=assistant
session 2023-06-12T20:40
A: I've decided: I'm applying for permanent residence in Canada through Express Entry. #express
B: That's a big step, Hana. Have you taken the language test yet?
A: IELTS is booked for July 8th. I need at least 8 in listening. #ielts
B: Practise with full mock tests under timed conditions; listening improves fastest with daily exposure.
A: My cat Tofu is the one I'm most worried about. He's 12 and hates carriers. #tofu
B: Talk to your vet early about calming options and the health certificate for import.
A: I work as a UX researcher, so I hope it counts as a skilled job. #ux
B: It should fall under a skilled NOC category. Check the exact code for your points.
session 2023-07-30T11:00
A: Still waiting for the IELTS results, they said about two weeks.
B: The wait is the worst part. How did the listening feel on the day?
A: Fine, but the writing task about urban transport was awful.
B: Writing is often the hardest band to push up. Let's see.
A: Tofu knocked my coffee onto my laptop during a study session.
B: Oh no! Did the laptop survive?
A: Barely, the keyboard is sticky now.
B: Cats have a gift for timing.
A: My manager asked if I'd like to keep working for them remotely from Canada.
B: That could be a good fallback if the job search there takes time.
session 2023-09-03T17:30
A: IELTS results: 8.5 listening, 7.5 reading, 7 writing, 8 speaking. #results
B: Strong scores, that should give you good points.
A: My CRS score is 491, the last draws were around 480. #crs
B: You're above the recent cut-offs, which is promising.
A: My brother Daichi lives in Toronto, he says I should move there. #daichi
B: Having family nearby helps a lot when you arrive.
A: But I've been talking to a company in Vancouver, Fieldnote, about a job. #fieldnote
B: Both cities have strong tech scenes; Vancouver is pricier but closer to nature.
session 2023-12-20T22:00
A: I got the invitation to apply! The ITA came on December 6th. #ita
B: Congratulations! You have 60 days to submit the full application.
A: Fieldnote made me an offer: senior researcher, 115k CAD. #offer
B: That's a great offer. Does it include relocation?
A: 5,000 dollars for relocation. Daichi is sulking that I'm not choosing Toronto.
B: He'll come round, and it's just a flight.
A: Tofu had his vet check, healthy for his age.
session 2024-02-14T19:30
A: Application submitted! Police certificates, medical exam, everything.
B: A huge milestone. Now the wait.
A: Fieldnote agreed that I start remotely until I land.
B: That's a generous arrangement.
A: Daichi sent me a list of Toronto neighbourhoods anyway. He doesn't give up.
B: Brothers rarely do. You could plan a visit once you've settled.
A: I've started looking at flats in Vancouver online. Everything is tiny and expensive.
B: Look at the areas a little out of downtown, more affordable and very liveable.
A: Tofu needs a new carrier, the old one is falling apart.
B: Get one now so he gets used to it long before the flight.
session 2024-04-04T08:15
A: PR approved! Landing in Vancouver on May 15th. #landing
B: Amazing news. What's left to do?
A: Shipping boxes, selling furniture, and Tofu's flight. He flies in the cabin with me. #cabin
B: Cabin is best for an older cat. Get an airline-approved soft carrier and let him sleep in it for weeks before.
A: I found an apartment in Mount Pleasant, 2,600 a month. #mtpleasant
B: Good area, near the Main Street cafés.
A: Daichi promised to visit in July, so he's forgiven me. #visit
B: That's lovely, you can show him the mountains.
single-hop: What does Hana do for a living? -> ux
single-hop: What is Hana's pet called, and how old is it? -> tofu
single-hop: What salary did the west-coast firm offer Hana? -> offer
multi-hop: Which city did Hana's sibling want her to pick, and where did she settle instead? -> daichi landing
multi-hop: How did Hana's points compare with the recent cut-off, and when did her invitation arrive? -> crs ita
temporal: When did Hana sit her English exam? -> ielts
temporal: On what day does Hana arrive in her new country? -> landing
temporal: Who is coming to see Hana in summer 2024? -> visit
"""


if __name__ == "__main__":
    main()
